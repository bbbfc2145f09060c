"""How `soc` shows things on a console: Rich tables and summary lines, and the detection reporter.

Functions here only format and print; the command modules decide what to fetch and where it goes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from citysoc.detection_service import DetectionRun
from citysoc.schedule import iso
from correlator.authoring.attack import AttackData
from correlator.authoring.backtest import BacktestExpectation, BacktestResult, RuleRow
from correlator.authoring.check import ERROR, Finding
from correlator.authoring.coverage import Coverage
from correlator.authoring.ruletest import FAIL, NOT_RUNNABLE, PASS, UNTESTED, RuleTestReport
from correlator.model import CompiledRuleSet

SEVERITY_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}
TEST_STATUS_STYLE = {PASS: "green", FAIL: "red", UNTESTED: "yellow", NOT_RUNNABLE: "dim"}

# Operations ----------------------------------------------------------------------------------------


def print_tenants(console: Console, tenants: Sequence[dict[str, Any]]) -> None:
    table = Table("id", "name", "created")
    for tenant in tenants:
        table.add_row(tenant["id"], tenant["name"], str(tenant.get("created_at", "")))
    console.print(table)


def print_contract(console: Console, answer: dict[str, Any]) -> None:
    """A member's SLA contract: its calendar, then the targets per severity."""
    contract = answer["contract"]
    calendar = contract["calendar"]
    origin = "the default contract" if answer["default"] else f"own contract, set by {answer['updated_by']}"
    console.print(f"[bold]{answer['tenant_id']}[/bold]: {origin}")
    if calendar["kind"] == "24x7":
        console.print("  calendar 24x7")
    else:
        hours = ", ".join(f"{day} {spans}" for day, spans in calendar["hours"].items())
        holidays = ", ".join(calendar.get("holidays") or []) or "none"
        console.print(f"  calendar business hours, {calendar['timezone']}: {hours}; holidays: {holidays}")
    table = Table("severity", "acknowledge", "triage", "resolve", title="Targets", title_justify="left")
    for severity in ("critical", "high", "medium", "low"):
        targets = contract["targets"][severity]
        table.add_row(f"[{SEVERITY_STYLE[severity]}]{severity}[/]", targets["acknowledge"], targets["triage"],
                      targets["resolve"])
    console.print(table)


def print_sources(console: Console, sources: Sequence[dict[str, Any]], *, now: datetime | None = None) -> None:
    """Sources with how their senders are known and their data health over the last hour."""
    now = now or datetime.now(UTC)
    table = Table("source", "last event", "events, last hour", "parse errors", "last dead letter")
    for source in sources:
        health = source.get("health") or {}
        per_minute = health.get("events_per_minute") or []
        rate = health.get("parse_error_rate")
        last_dead = health.get("last_dead_letter")
        table.add_row(
            f"#{source['id']} {source['tenant_id']}/{escape(source['name'])}\n"
            f"[dim]{source['kind']}: {escape(recognised_by(source))}[/dim]",
            age(health.get("last_event_received"), now),
            # Twelve five-minute bars keep the table narrow; `--json` has every minute.
            f"{sparkline([sum(per_minute[i:i + 5]) for i in range(0, len(per_minute), 5)])} {sum(per_minute)}"
            if sum(per_minute) else "0",
            "-" if rate is None else f"{rate:.1%}",
            escape(f"{last_dead['reason'][:80]} ({age(last_dead['at'], now)})") if last_dead else "-")
    if not sources:
        table.add_row("no sources yet: soc sources add", "-", "-", "-", "-")
    console.print(table)


def recognised_by(source: dict[str, Any]) -> str:
    """How the intake knows the source's senders, in a few words."""
    parts = [", ".join(source.get("networks") or [])]
    if source.get("has_token"):
        parts.append("bearer token")
    if source.get("certificate_sha256"):
        parts.append(f"client cert {source['certificate_sha256'][:12]}…")
    if source.get("cloud_accounts"):
        parts.append("accounts " + ", ".join(source["cloud_accounts"]))
    pull = source.get("pull") or {}
    if pull:  # where it is pulled from: the first setting naming the provider's side (never a credential)
        where = next((f"{key} {pull[key]}" for key in ("bucket", "eventhub", "subscription", "domain", "org",
                                                        "enterprise", "tenant_id") if pull.get(key)), "")
        parts.insert(0, f"pulled (soc pull) {where}".strip())
    text = "; ".join(part for part in parts if part)
    return text or ("files (soc ingest)" if not source.get("transports") else "-")


def age(moment: str | None, now: datetime) -> str:
    """`12s ago`, `5m ago`, `3h ago`, `2d ago`, or `never`."""
    if not moment:
        return "never"
    seconds = max(0, int((now - datetime.fromisoformat(moment)).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[int]) -> str:
    """One character per value, scaled to the largest; a blank is a minute without events."""
    top = max(values, default=0)
    if not top:
        return _BARS[0] * len(values)
    return "".join(_BARS[0] if not v else _BARS[max(1, round(v / top * (len(_BARS) - 1)))] for v in values)


def print_alerts(console: Console, alerts: Sequence[dict[str, Any]]) -> None:
    table = Table("time", "tenant", "level", "rule", "events", "id")
    for alert in alerts:
        table.add_row(alert["@timestamp"], alert["organization"]["id"], alert["rule"]["level"],
                      alert["rule"]["title"], str(len(alert["event"]["ids"])), alert["id"][:12])
    console.print(table)
    console.print(f"{len(alerts)} alert(s)")


def print_case_queue(console: Console, cases: Sequence[dict[str, Any]], *, title: str = "Case queue",
                     now: datetime | None = None) -> None:
    """The queue in the API's order: next SLA due time, then severity."""
    now = now or datetime.now(UTC)
    table = Table("case", "tenant", "severity", "priority", "status", "SLA due", "assignee", "alerts", "first seen",
                  "title", title=title, title_justify="left")
    for case in cases:
        severity = case["severity"]
        table.add_row(str(case["id"]), case["tenant_id"], f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]",
                      case.get("priority", ""), case["status"], sla_due(case, now), case.get("assignee") or "-",
                      str(case["alert_count"]), str(case["first_seen"])[:16].replace("T", " "), escape(case["title"]))
    if not cases:
        table.add_row("-", "-", "-", "-", "-", "-", "-", "0", "-", "no open cases")
    console.print(table)


SLA_CLOCKS = ("acknowledge", "triage", "resolve")


def span(seconds: float) -> str:
    """`45s`, `12m`, `3h05m`, `4h`, `2d04h`."""
    seconds = int(abs(seconds))
    if seconds >= 86400:
        hours = seconds % 86400 // 3600
        return f"{seconds // 86400}d{hours:02d}h" if hours else f"{seconds // 86400}d"
    if seconds >= 3600:
        minutes = seconds % 3600 // 60
        return f"{seconds // 3600}h{minutes:02d}m" if minutes else f"{seconds // 3600}h"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def sla_due(case: dict[str, Any], now: datetime) -> str:
    """The clock due next and how long until (or since) it is due; `paused` while awaiting the member."""
    sla = case.get("sla") or {}
    if sla.get("paused"):
        return "[dim]paused[/dim]"
    running = [(clock, sla[clock]) for clock in SLA_CLOCKS if clock in sla and not sla[clock]["done_at"]]
    if not running:
        breached = [clock for clock in SLA_CLOCKS if clock in sla and sla[clock]["breached"]]
        return f"[red]{', '.join(breached)} breached[/red]" if breached else "met"
    clock, reading = min(running, key=lambda item: item[1]["due_at"])
    left = (datetime.fromisoformat(reading["due_at"]) - now).total_seconds()
    if left < 0:
        return f"[bold red]{clock} overdue {span(left)}[/bold red]"
    return f"[yellow]{clock} in {span(left)}[/yellow]" if left < 3600 else f"{clock} in {span(left)}"


def sla_lines(case: dict[str, Any]) -> list[tuple[str, str]]:
    """The contract's calendar, then each clock's target and due time, done or breached."""
    sla = case.get("sla")
    if not sla:
        return []
    paused = " · [dim]paused, awaiting the member[/dim]" if sla["paused"] else ""
    lines = [("SLA", f"{sla['calendar']}, {sla['contract']} contract{paused}")]
    for clock in SLA_CLOCKS:
        reading = sla[clock]
        due = str(reading["due_at"])[:16].replace("T", " ")
        state = (f"done {str(reading['done_at'])[:16].replace('T', ' ')} (due {due})" if reading["done_at"]
                 else f"due {due}")
        mark = "[red]breached[/red] " if reading["breached"] else ""
        lines.append((f" {clock}", f"{span(reading['target_seconds'])}: {mark}{state}"))
    return lines


def print_case_detail(console: Console, case: dict[str, Any], *, comments: Sequence[dict[str, Any]],
                      tasks: Sequence[dict[str, Any]], observables: Sequence[dict[str, Any]]) -> None:
    """`soc cases show`: the case's fields, then what analysts gathered, then its alerts and audit trail."""
    severity = case["severity"]
    console.print(f"[bold]case {case['id']}[/bold] {case['title']}")
    fields = [
        ("tenant", case["tenant_id"]),
        ("status", case["status"] + (f" ({case['resolution']})" if case.get("resolution") else "")),
        ("severity", f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/] · priority {case.get('priority', '')}"),
        ("assignee", case.get("assignee") or "-"),
        ("alerts", f"{case['alert_count']} · {str(case['first_seen'])[:16]} .. {str(case['last_seen'])[:16]}"),
        ("ATT&CK", ", ".join(case.get("techniques") or []) or "-"),
        *sla_lines(case),
        ("version", str(case.get("version", ""))),
    ]
    if case.get("merged_into_id"):
        fields.append(("merged into", str(case["merged_into_id"])))
    for name, value in fields:
        console.print(f"  {name:<12} {value}")
    if observables:
        table = Table("kind", "value", "TLP", "from", title="Observables", title_justify="left")
        for item in observables:
            table.add_row(item["kind"], item["value"], item["tlp"].upper(), item["source"])
        console.print(table)
    if tasks:
        table = Table("task", "status", "title", title="Tasks", title_justify="left")
        for task in tasks:
            table.add_row(str(task["id"]), task["status"], task["title"])
        console.print(table)
    for comment in comments:
        console.print(f"  [dim]{str(comment['at'])[:16]} {comment['author']}:[/dim] {comment['body']}")
    table = Table("time", "level", "rule", "alert", title="Alerts", title_justify="left")
    for alert in case.get("alerts", []):
        table.add_row(str(alert["timestamp"])[:19], alert["rule_level"], alert["rule_title"], alert["id"][:12])
    console.print(table)
    table = Table("at", "actor", "action", "detail", title="Audit trail", title_justify="left")
    for event in case.get("events", []):
        table.add_row(str(event["at"])[:19], event["actor"], event["action"],
                      ", ".join(f"{k}={v}" for k, v in event["detail"].items())[:120])
    console.print(table)


def print_evidence(console: Console, page: dict[str, Any]) -> None:
    """`soc cases show --evidence`: a page of the raw events behind a case's alerts, each with its original."""
    items = page["items"]
    first = page["offset"] + 1
    console.print(f"[bold]Evidence[/bold] of case {page['case_id']} ({page['tenant_id']}): events {first}.."
                  f"{page['offset'] + len(items)} of {page['total']}")
    for item in items:
        event = item["event"]
        if event is None:
            console.print(f"  [yellow]{item['event_id']}[/yellow] not in the event store "
                          f"(alerts {', '.join(a[:12] for a in item['alert_ids'])})")
            continue
        meta = event.get("event", {})
        console.print(f"  [dim]{event.get('@timestamp', '')} {meta.get('dataset', '')} {item['event_id']}[/dim]"
                      + (f" {escape(str(meta['action']))}" if meta.get("action") else ""))
        console.print(f"    {escape(str(meta.get('original', '(no original kept)')))}", soft_wrap=True)
    if page["offset"] + len(items) < page["total"]:
        console.print(f"[dim]more: --offset {page['offset'] + len(items)}[/dim]")


def print_campaigns(console: Console, campaigns: Sequence[dict[str, Any]], *, title: str = "Campaigns") -> None:
    """City-wide campaigns; a member's key sees its own cases and a count of the other members instead."""
    table = Table("campaign", "indicator", "member organisations", "cases", "last seen", "title", title=title,
                  title_justify="left")
    for campaign in campaigns:
        indicator = f"{campaign['indicator']['kind']}={campaign['indicator']['value']}"
        members = (", ".join(campaign["tenants"]) if "tenants" in campaign
                   else f"yours + {campaign['other_organisations']} other(s)")
        table.add_row(str(campaign["id"]), indicator, members, ", ".join(str(c) for c in campaign["case_ids"]),
                      str(campaign.get("last_seen", "-"))[:16].replace("T", " "), campaign["title"])
    if not campaigns:
        table.add_row("-", "-", "-", "-", "-", "no campaigns: no indicator seen at several member organisations")
    console.print(table)


def print_dead_letters(console: Console, letters: Sequence[dict[str, str]]) -> None:
    table = Table("tenant", "source", "origin", "reason", "raw")
    for letter in letters:
        table.add_row(letter["tenant"], letter["source"], letter["origin"], letter["reason"], letter["raw"][:60])
    console.print(table)


# Detection -----------------------------------------------------------------------------------------


def print_rule_report(console: Console, rules: CompiledRuleSet) -> None:
    """Compiled rules per dataset, and every rule that could not be compiled with its reason."""
    per_dataset = Counter(dataset for rule in rules.rules for dataset in rule.datasets)
    console.print(
        f"rules: {len(rules.rules)} compiled ("
        + ", ".join(f"{dataset}: {count}" for dataset, count in sorted(per_dataset.items()))
        + f"), {len(rules.unsupported)} not runnable"
    )
    if not rules.unsupported:
        return
    # A rule pack for log sources we do not collect would list hundreds of rules: count those by reason.
    not_collected = Counter(r.reason for r in rules.unsupported if r.reason.startswith("log source"))
    for reason, count in sorted(not_collected.items()):
        console.print(f"  {count:4d} × {reason}")
    table = Table("rule", "file", "why it cannot run", title="Rules that cannot run", title_justify="left")
    for rule in rules.unsupported:
        if not rule.reason.startswith("log source"):
            table.add_row(f"{rule.title} ({rule.id})", str(rule.path), rule.reason)
    if table.row_count:
        console.print(table)


def detection_summary(run: DetectionRun) -> str:
    result, answer = run.result, run.delivered
    return (f"detection: {sum(result.events.values())} events scanned, {len(result.alerts)} alerts matched, "
            f"{len(result.new_alerts)} new; case API: {answer['created']} alerts added to "
            f"{len(answer['cases'])} case(s), {answer.get('pending', 0)} held as entity risk, "
            f"{answer['duplicates']} already known")


class ConsoleDetectionReporter:
    """A `DetectionReporter` on a console: a spinner per step, one line per cycle that found something new."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, description: str) -> AbstractContextManager[object]:
        return self.console.status(description)

    def finished(self, run: DetectionRun, *, attempt: int) -> None:
        cycle = run.cycle
        if cycle is None:
            self.console.print(f"run {attempt}: {detection_summary(run)}")
            return
        windows = ", ".join(str(window) for window in cycle.plan.windows) or "none"
        context = ", ".join(str(window) for window in cycle.context.windows)
        self.console.print(f"cycle {attempt} arrivals ({cycle.after}, {cycle.upto}] windows {windows}"
                           f"{f' correlating {context}' if context else ''}: {detection_summary(run)}",
                           highlight=False)
        late = cycle.plan.late_window()
        if late is not None:
            self.console.print(
                f"cycle {attempt}: {cycle.plan.late_events} events of {', '.join(late.tenants)} arrived later than the "
                f"allowed lateness (event time {late}) and were not evaluated; `soc detect --since "
                f"{iso(late.since)} --until {iso(late.until)}` evaluates them", highlight=False)

    def failed(self, error: Exception, *, attempt: int) -> None:
        self.console.print(f"cycle {attempt}: failed ({type(error).__name__}: {error}); "
                           "the next cycle evaluates its arrivals again")


# Rule tooling --------------------------------------------------------------------------------------


def print_findings(console: Console, findings: Sequence[Finding], *, files: int, counts: dict[str, int],
                   attack: AttackData) -> None:
    for finding in findings:
        style = "red" if finding.severity == ERROR else "yellow"
        console.print(f"{escape(finding.where)}: [{style}]{finding.severity}[/{style}] "
                      f"{escape(f'[{finding.check}]')} {finding.rule_id or '-'}: {escape(finding.message)}")
    console.print(f"{files} rule file(s) checked against {attack.describe()}: "
                  f"{counts['errors']} error(s), {counts['warnings']} warning(s)")


def print_test_report(console: Console, report: RuleTestReport) -> None:
    for result in report.results:
        passed = sum(outcome.ok for outcome in result.outcomes)
        style = TEST_STATUS_STYLE[result.status]
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


def print_backtest(console: Console, result: BacktestResult, rows: Sequence[RuleRow], *,
                   expectations: int, violations: Sequence[tuple[str, BacktestExpectation, int]]) -> None:
    table = Table("alerts", "events behind alerts", "matched events", "tenants", "kind", "rule", "id",
                  title="Backtest (noisiest first)", title_justify="left")
    for row in rows:
        table.add_row(str(row.alerts), str(row.behind), str(row.matched),
                      str(len(result.tenants.get(row.rule_id, ()))), row.kind, escape(row.title), row.rule_id)
    console.print(table)
    scanned = ", ".join(f"{dataset}: {count}" for dataset, count in sorted(result.events.items())) or "none"
    console.print(f"events scanned: {scanned}; {sum(result.alerts.values())} alert(s) in all; "
                  f"{expectations} expectation(s), {len(violations)} broken")
    for rid, exp, alerts in violations:
        console.print(f"[red]✗[/red] {rid}: expected {exp} alert(s) ({escape(exp.where)}), got {alerts}")


def print_coverage(console: Console, result: Coverage, ruleset: CompiledRuleSet, attack: AttackData) -> None:
    titles = {rule.id: rule.title for rule in ruleset.rules}
    console.print(f"{result.rules} runnable rule(s), {result.not_runnable} not runnable; {attack.describe()}")
    tactics = Table("tactic", "rules", title="ATT&CK tactics", title_justify="left")
    for tactic in attack.tactics.values():
        covered = result.tactics.get(tactic.shortname, [])
        tactics.add_row(tactic.name, str(len(covered)) if covered else "[dim]0[/dim]")
    for shortname, ids in sorted(result.tactics.items()):
        if shortname not in attack.tactics:
            tactics.add_row(f"{shortname} [red](not in ATT&CK v{attack.version})[/red]", str(len(ids)))
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


# Users, keys, audit --------------------------------------------------------------------------------


def print_users(console: Console, users: Sequence[dict[str, Any]]) -> None:
    table = Table("user", "name", "role", "tenant", "state", "last key use")
    for user in users:
        table.add_row(escape(user["id"]), escape(user["display_name"]), user["role"], user["tenant_id"] or "-",
                      "[red]disabled[/red]" if user["disabled_at"] else "active", user["last_used_at"] or "never")
    console.print(table)


def print_keys(console: Console, keys: Sequence[dict[str, Any]]) -> None:
    table = Table("id", "user", "name", "role", "prefix", "expires", "last use", "state")
    now = datetime.now(UTC)
    for key in keys:
        expired = key["expires_at"] is not None and datetime.fromisoformat(key["expires_at"]) <= now
        state = "[red]revoked[/red]" if key["revoked_at"] else "[yellow]expired[/yellow]" if expired else "active"
        table.add_row(str(key["id"]), escape(key["user_id"]), escape(key["name"]), key["role"], key["prefix"] + "...",
                      key["expires_at"] or "never", key["last_used_at"] or "never", state)
    console.print(table)


def print_audit(console: Console, entries: Sequence[dict[str, Any]]) -> None:
    table = Table("seq", "at", "actor", "action", "object", "tenant", "detail")
    for entry in entries:
        table.add_row(str(entry["seq"]), entry["at"][:19], escape(entry["actor"]), entry["action"],
                      escape(f"{entry['target_type']} {entry['target_id']}"), entry["tenant_id"] or "-",
                      escape(str(entry["detail"])[:120]))
    console.print(table)


def print_metrics(console: Console, answer: dict[str, Any]) -> None:
    """`soc metrics`: per member and severity, one line per clock; then every member together."""
    table = Table("member", "severity", "cases", "clock", "stopped", "mean", "p50", "p90", "p95", "breached",
                  "running", title=f"Cases opened {answer['since'][:16]} .. {answer['until'][:16]} (UTC)",
                  title_justify="left")
    for row in [*answer["rows"], *answer["overall"]]:
        member = row["tenant_id"] or "[bold]all members[/bold]"
        severity = row["severity"]
        for n, (clock, name) in enumerate((("acknowledge", "MTTA"), ("triage", "MTTT"), ("resolve", "MTTR"))):
            figures = row[clock]
            cells = ["-" if figures[key] is None else span(figures[key])
                     for key in ("mean_seconds", "p50_seconds", "p90_seconds", "p95_seconds")]
            breached = f"[red]{figures['breached']}[/red]" if figures["breached"] else "0"
            table.add_row(member if n == 0 else "", f"[{SEVERITY_STYLE.get(severity, '')}]{severity}[/]" if n == 0
                          else "", str(row["cases"]) if n == 0 else "", name, str(figures["count"]), *cells, breached,
                          str(figures["running"]), end_section=n == 2)
    if not answer["rows"]:
        table.add_row("-", "-", "0", "-", "-", "-", "-", "-", "-", "-", "-")
    console.print(table)
