"""Settings -> the objects the components need: stores, Spark and rules, the case API, the detection service.

This is the composition root's wiring (the CLI is the rest of it): the one place besides `citysoc.cli`
that imports several components, so the components never import each other. Nothing here prints.

Components a command may not need (the case API and FastAPI, Spark and the rule compiler, Elasticsearch, the
listeners) are imported on first use through `lazy`, the one table of them: importing them all costs about
three CPU seconds, so `soc ingest` imports only what ingesting runs. It is citysoc's one exception to
"imports at the top of the module" (see tests/test_imports.py); their types are imported for mypy only.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import structlog

from citysoc.deadletter import DeadLetterStore
from citysoc.errors import ConfigurationError, UnknownTenantError
from citysoc.health import HealthStore
from citysoc.settings import Settings
from citysoc.store.base import EventStore
from citysoc.store.factory import open_event_store
from citysoc.store.parquet import ParquetEventStore

if TYPE_CHECKING:
    import fastapi
    import pyspark.sql
    from fastapi import FastAPI
    from pyspark.sql import SparkSession

    import case_api.settings
    import case_api.sources.kinds
    import citysoc.caseclient
    import citysoc.detection_service
    import citysoc.store.elastic
    import collectors.attribution
    import collectors.drain
    import collectors.enrich
    import collectors.google_id
    import collectors.ingest
    import collectors.intake
    import collectors.listeners.service
    import collectors.listeners.tls
    import collectors.pull
    import collectors.records
    import collectors.spool
    import correlator.compiler
    from citysoc.caseclient import CaseClient
    from citysoc.detection_service import AlertSink, DetectionReporter, DetectionService
    from citysoc.store.base import WriteResult
    from citysoc.store.elastic import ElasticsearchEventStore
    from collectors.attribution import SourceRegistry
    from collectors.drain import Drainer
    from collectors.enrich import GeoEnricher
    from collectors.ingest import IngestReport
    from collectors.listeners.config import ListenerPlan
    from collectors.listeners.service import IntakeService
    from collectors.listeners.tls import TlsFiles
    from collectors.pull import PullRunner, PullSource
    from collectors.spool import Spool
    from correlator.authoring.evidence import RawParser
    from correlator.model import CompiledRuleSet

log = structlog.get_logger(__name__)

T = TypeVar("T")


class _Import(Generic[T]):
    """An attribute of a module, imported when first read: `_Import("package.module")` names the attribute it is
    assigned to, `_Import("package.module:name")` another one."""

    def __init__(self, target: str) -> None:
        self.module, _, self.attribute = target.partition(":")

    def __set_name__(self, owner: type, name: str) -> None:
        self.attribute = self.attribute or name

    def __get__(self, instance: object, owner: type | None = None) -> T:
        return cast(T, getattr(importlib.import_module(self.module), self.attribute))


class _Components:
    """The components the wiring imports on first use: `lazy.GeoEnricher` imports `collectors.enrich`
    the first time it is read. Annotations name types by module path: in this class body an entry's own name
    stands for the entry."""

    # the case API
    create_app: _Import[Callable[[case_api.settings.Settings], fastapi.FastAPI]] = _Import("case_api.app")
    CaseSettings: _Import[type[case_api.settings.Settings]] = _Import("case_api.settings:Settings")
    ensure_bootstrap_keys: _Import[Callable[[case_api.settings.Settings], dict[str, str]]] = \
        _Import("case_api.bootstrap")
    registered_in_embedded_database: _Import[Callable[[Path, str], bool]] = _Import("case_api.tenants.registered")
    PULL_KINDS: _Import[dict[str, case_api.sources.kinds.PullKind]] = _Import("case_api.sources.kinds")
    CaseClient: _Import[type[citysoc.caseclient.CaseClient]] = _Import("citysoc.caseclient")
    # Elasticsearch
    ElasticsearchEventStore: _Import[type[citysoc.store.elastic.ElasticsearchEventStore]] = \
        _Import("citysoc.store.elastic")
    # the collectors
    ingest_files: _Import[Callable[..., collectors.ingest.IngestReport]] = _Import("collectors.ingest")
    registry_from: _Import[Callable[[citysoc.caseclient.CaseClient], collectors.attribution.SourceRegistry]] = \
        _Import("collectors.attribution_api")
    health_recorder: _Import[Callable[
        [HealthStore, Callable[[], collectors.attribution.SourceRegistry]],
        Callable[[collectors.spool.SpoolBatch, collectors.records.ParsedBatch, WriteResult], None]]] = \
        _Import("collectors.attribution_api")
    GeoEnricher: _Import[type[collectors.enrich.GeoEnricher]] = _Import("collectors.enrich")
    Drainer: _Import[type[collectors.drain.Drainer]] = _Import("collectors.drain")
    Spool: _Import[type[collectors.spool.Spool]] = _Import("collectors.spool")
    Intake: _Import[type[collectors.intake.Intake]] = _Import("collectors.intake")
    ReloadingRegistry: _Import[type[collectors.intake.ReloadingRegistry]] = _Import("collectors.intake")
    GoogleIdTokens: _Import[type[collectors.google_id.GoogleIdTokens]] = _Import("collectors.google_id")
    IntakeService: _Import[type[collectors.listeners.service.IntakeService]] = _Import("collectors.listeners.service")
    TlsFiles: _Import[type[collectors.listeners.tls.TlsFiles]] = _Import("collectors.listeners.tls")
    default_server_names: _Import[Callable[[], list[str]]] = _Import("collectors.listeners.tls")
    ensure_tls_files: _Import[Callable[..., collectors.listeners.tls.TlsFiles]] = _Import("collectors.listeners.tls")
    PullSource: _Import[type[collectors.pull.PullSource]] = _Import("collectors.pull")
    PullRunner: _Import[type[collectors.pull.PullRunner]] = _Import("collectors.pull")
    PullCheckpoints: _Import[type[collectors.pull.PullCheckpoints]] = _Import("collectors.pull")
    parse_raw: _Import[Callable[..., tuple[str, dict[str, Any]]]] = _Import("collectors.raw")
    # detection: Spark and the correlator
    build_session: _Import[Callable[..., pyspark.sql.SparkSession]] = _Import("correlator.engine.session")
    DEFAULT_RULES_DIR: _Import[Path] = _Import("correlator.compiler")
    RuleCompiler: _Import[type[correlator.compiler.RuleCompiler]] = _Import("correlator.compiler")
    DetectionService: _Import[type[citysoc.detection_service.DetectionService]] = \
        _Import("citysoc.detection_service")


lazy = _Components()


# Stores --------------------------------------------------------------------------------------------


def event_store(settings: Settings) -> EventStore:
    """The store SOC_EVENT_STORE chooses: the lake under $SOC_HOME (default), or Elasticsearch at SOC_ES_URL."""
    return open_event_store(settings, dead_letters=dead_letter_store(settings))


def elasticsearch_store(settings: Settings) -> ElasticsearchEventStore | None:
    """The Elasticsearch store when it is the configured one (tenant roles, alerts stream), else None."""
    if settings.event_store != "elasticsearch":
        return None
    store = event_store(settings)
    return store if isinstance(store, lazy.ElasticsearchEventStore) else None


def dead_letter_store(settings: Settings) -> DeadLetterStore:
    return DeadLetterStore(settings.deadletter_dir)


def health_store(settings: Settings) -> HealthStore:
    """Data health per source: the intake writes it, the case API reads it (same `$SOC_HOME`)."""
    return HealthStore(settings.health_dir)


# Case API ------------------------------------------------------------------------------------------


def embedded_case_app(settings: Settings) -> tuple[FastAPI, dict[str, str]]:
    """The case API application on the embedded database, and its bootstrap API keys by role."""
    settings.ensure_home()
    case_settings = lazy.CaseSettings(home=settings.home, database_url=settings.database_url)
    application = lazy.create_app(case_settings)
    return application, lazy.ensure_bootstrap_keys(case_settings)


def bootstrap_keys(settings: Settings) -> dict[str, str]:
    """The embedded case API's bootstrap API keys by role (made, with the database, on first use)."""
    settings.ensure_home()
    return lazy.ensure_bootstrap_keys(lazy.CaseSettings(home=settings.home, database_url=settings.database_url))


@contextmanager
def case_client(settings: Settings, *, role: str) -> Iterator[CaseClient]:
    """A client of the case API: the remote one at SOC_API_URL, else the embedded one in-process.

    `role` picks which bootstrap key the embedded default uses; against a remote API the key in
    SOC_API_KEY decides what is allowed.
    """
    if settings.api_url:
        if not settings.api_key:
            raise ConfigurationError("SOC_API_URL is set but SOC_API_KEY is not: give the API key to use")
        with lazy.CaseClient.remote(settings.api_url, settings.api_key) as client:
            yield client
        return
    application, keys = embedded_case_app(settings)
    try:
        with lazy.CaseClient.in_process(application, keys[role]) as client:
            yield client
    finally:
        application.state.engine.dispose()


def require_tenant(settings: Settings, tenant: str) -> None:
    """UnknownTenantError unless the case API knows `tenant` (the embedded database is asked directly first)."""
    if (not settings.api_url and not settings.database_url
            and lazy.registered_in_embedded_database(settings.home, tenant)):
        return
    with case_client(settings, role="admin") as client:
        if tenant not in {known["id"] for known in client.list_tenants()}:
            raise UnknownTenantError(tenant)


def source_registry(settings: Settings) -> SourceRegistry:
    """The intake's registry of every source's senders, loaded now from the case API with the service key."""
    with case_client(settings, role="service") as client:
        return lazy.registry_from(client)


def alert_sink(settings: Settings) -> AlertSink:
    """Delivers alerts to the case API with the service key.

    A client per delivery: a long-lived detection service keeps going when the API was unreachable
    for one run, and the embedded database is not held open between runs.
    """

    elastic = elasticsearch_store(settings)

    def deliver(alerts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
        if elastic is not None:  # dashboards read alerts from the alerts data streams (ids make it idempotent)
            elastic.write_alerts(alerts)
        with case_client(settings, role="service") as client:
            answer = client.post_alerts(alerts)
        for refused in answer["rejected"]:
            log.warning("alert refused by the case API", alert_id=refused["id"], tenant=refused["tenant_id"],
                        reason=refused["reason"][:500])
        return answer

    return deliver


def geo_enricher(settings: Settings) -> GeoEnricher:
    """GeoIP enrichment from the database under $SOC_HOME/geoip (or SOC_GEOIP_DIR); a pass-through without one."""
    return lazy.GeoEnricher.from_directory(settings.geoip_path)


# Intake --------------------------------------------------------------------------------------------


def ingest(settings: Settings, *, tenant: str, source: str, paths: Sequence[Path], year: int | None,
           on_progress: Callable[[int], None] | None = None) -> IngestReport:
    """Parse, normalise and store files for one registered tenant; bad records are dead-lettered."""
    require_tenant(settings, tenant)
    return lazy.ingest_files(tenant=tenant, source=source, paths=list(paths), store=event_store(settings),
                             dead_letters=dead_letter_store(settings), year=year, on_progress=on_progress,
                             enricher=geo_enricher(settings))


def ingest_into_scratch_lake(folder: Path, *, tenant: str, source: str, paths: Sequence[Path],
                             year: int | None,
                             enricher: GeoEnricher | None = None) -> tuple[ParquetEventStore, IngestReport]:
    """Parse `paths` with the real collector (and `enricher`, as ingest enriches) into a lake of their own under
    `folder` (never the user's)."""
    store = ParquetEventStore(folder / "events")
    report = lazy.ingest_files(tenant=tenant, source=source, paths=list(paths), store=store,
                               dead_letters=DeadLetterStore(folder / "deadletter"), year=year, enricher=enricher)
    return store, report


def intake_tls(settings: Settings, *, certificate: Path | None, key: Path | None, client_cas: Sequence[Path],
               server_names: Sequence[str]) -> TlsFiles:
    """The operator's certificate and key, or the intake's own CA and server certificate under
    $SOC_HOME/tls (made on first use). Client certificates are accepted from the intake CA and `client_cas`."""
    if (certificate is None) != (key is None):
        raise ConfigurationError("give both --tls-cert and --tls-key, or neither (the intake then makes its own)")
    if certificate is not None and key is not None:
        return lazy.TlsFiles(certificate, key, certificate, tuple(client_cas))
    own = lazy.ensure_tls_files(settings.home / "tls", server_names=list(server_names) or lazy.default_server_names())
    return lazy.TlsFiles(own.certificate, own.key, own.ca, (*own.client_cas, *client_cas))


def _drainer(settings: Settings, spool: Spool, dead_letters: DeadLetterStore,
             registry: Callable[[], SourceRegistry]) -> Drainer:
    """Moves `spool` into the event store (recovered first: what a crashed writer left is finished or
    discarded), enriched, recording data health per source of `registry`."""
    store = event_store(settings)
    store.recover()
    return lazy.Drainer(spool, store, dead_letters, on_stored=lazy.health_recorder(health_store(settings), registry),
                        compact_every=settings.compact_every_seconds or None, enricher=geo_enricher(settings))


def intake_service(settings: Settings, plan: ListenerPlan, *, tls: TlsFiles | None,
                   reload_every: float) -> IntakeService:
    """Listeners, the spool under $SOC_HOME/spool, the drainer into the lake, and the reloading registry."""
    settings.ensure_home()
    registry = lazy.ReloadingRegistry(lambda: source_registry(settings), every=reload_every)
    spool = lazy.Spool(settings.spool_dir)
    dead_letters = dead_letter_store(settings)
    drainer = _drainer(settings, spool, dead_letters, registry.current)
    intake = lazy.Intake(spool, registry.current, dead_letters=dead_letters)
    return lazy.IntakeService(intake, plan, tls=tls, drainer=drainer, registry=registry,
                              id_tokens=lazy.GoogleIdTokens(settings.google_id_certs_url))


def pull_sources(settings: Settings, *, only: Sequence[str] = ()) -> list[PullSource]:
    """The registered pulled sources (all, or those named or numbered in `only`), read now from the case API."""
    with case_client(settings, role="service") as client:
        access = client.source_access()
    sources = [lazy.PullSource(id=entry["id"], tenant=entry["tenant_id"], name=entry["name"], kind=entry["kind"],
                               parser=entry["parser"], settings=entry.get("pull") or {},
                               cloud_accounts=tuple(entry.get("cloud_accounts") or ()))
               for entry in access if entry["kind"] in lazy.PULL_KINDS]
    if only:
        sources = [source for source in sources if source.name in only or str(source.id) in only]
    return sources


@dataclass
class PullService:
    """`soc pull`: the pull runner appending to its own spool, and the drainer moving that spool into the lake."""

    runner: PullRunner
    drainer: Drainer
    spool: Spool


def pull_service(settings: Settings, *, only: Sequence[str] = ()) -> PullService:
    settings.ensure_home()
    spool = lazy.Spool(settings.pull_dir / "spool")
    dead_letters = dead_letter_store(settings)
    registry = source_registry(settings)
    drainer = _drainer(settings, spool, dead_letters, lambda: registry)
    runner = lazy.PullRunner(spool, lazy.PullCheckpoints(settings.pull_dir / "checkpoints"), dead_letters,
                             lambda: pull_sources(settings, only=only))
    return PullService(runner, drainer, spool)


def raw_parser(year: int | None) -> RawParser:
    """Evidence `raw:` records go through the collectors' real parsers."""

    def parse(source: str, raw: Any) -> tuple[str, Mapping[str, Any]]:
        return lazy.parse_raw(source, raw, tenant="evidence", year=year)

    return parse


# Detection -----------------------------------------------------------------------------------------


def spark_session(settings: Settings, *, short_lived: bool = False) -> SparkSession:
    """The Spark session the settings describe; `short_lived` for a command that ends within seconds
    (`build_session`)."""
    return lazy.build_session(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions,
                              driver_memory=settings.spark_driver_memory, short_lived=short_lived)


def rule_folders(extra_rules: Sequence[Path], *, own_rules: bool) -> list[Path]:
    """The project's `detection_rules/` (unless `own_rules` is off) and `extra_rules`, each checked to exist."""
    folders = ([lazy.DEFAULT_RULES_DIR] if own_rules else []) + [Path(path) for path in extra_rules]
    for folder in folders:
        if not folder.exists():
            raise ConfigurationError(f"rule folder {folder} does not exist")
    return folders


def compile_rules(spark: SparkSession, folders: Sequence[Path]) -> CompiledRuleSet:
    return lazy.RuleCompiler(spark=spark).compile(folders)


def detection_service(settings: Settings, spark: SparkSession, rules: CompiledRuleSet, *,
                      reporter: DetectionReporter) -> DetectionService:
    """The service over the lake, storing alerts in the lake and delivering them to the case API."""
    return lazy.DetectionService(spark, rules, store=event_store(settings), alerts_dir=settings.alerts_dir,
                                 sink=alert_sink(settings), reporter=reporter,
                                 checkpoint_file=settings.detect_checkpoint_file)
