"""SigmaHQ coverage: which rules compile and run here, and the exact reason for every one that cannot.

`sigmahq_coverage(spark, root)` compiles every rule document below the SigmaHQ folders (`rules`,
`rules-emerging-threats`, `rules-threat-hunting`) with `RuleCompiler(spark)`, Spark analysis included,
and accounts for every document exactly once: compiled, or unsupported with the compiler's reason.
`write_report` renders it as `docs/coverage/sigmahq.md` (for people) and `sigmahq.json` (for tools and
the test that keeps the committed report up to date). The output holds no time stamp and no absolute
path, so regenerating it with unchanged code and rules gives the same bytes.

    python -m correlator.authoring.sigmahq [--sigmahq ../shared/corpora/sigmahq] [--out docs/coverage]

A compiled rule whose datasets no collector produces yet (`citysoc.schema.DATASETS`) is counted as
compiled and marked "mapping only": it runs as soon as events of its dataset are stored.
(Not to be confused with `correlator.rule_coverage`, the ATT&CK/tenant coverage of an active rule set.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sigma.rule import SigmaLogSource

from citysoc.schema import DATASETS
from correlator.compiler import RuleCompiler
from correlator.compiler.logsources import find_route
from correlator.engine.session import build_session

RULE_FOLDERS: tuple[str, ...] = ("rules", "rules-emerging-threats", "rules-threat-hunting")
DEFAULT_SIGMAHQ = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "sigmahq"
DEFAULT_OUT = Path(__file__).resolve().parents[2] / "docs" / "coverage"
COLLECTED, MAPPING_ONLY, NOT_COLLECTED = "collected", "mapping only", "not collected"


@dataclass(frozen=True)
class RuleOutcome:
    """One rule document: where it is, its log source, and whether it compiled (else why not)."""

    id: str | None
    title: str | None
    file: str  # relative to the SigmaHQ folder
    logsource: str  # product=linux/category=process_creation
    product: str  # product, else category, else service: the family the targets are stated for
    compiled: bool
    reason: str | None = None
    datasets: tuple[str, ...] = ()


@dataclass
class CoverageReport:
    rules: list[RuleOutcome] = field(default_factory=list)

    def by(self, attribute: str) -> dict[str, tuple[int, int]]:
        """{key: (compiled, total)} grouped by `product` or `logsource`, sorted by key."""
        counts: dict[str, list[int]] = {}
        for rule in self.rules:
            entry = counts.setdefault(getattr(rule, attribute), [0, 0])
            entry[0] += rule.compiled
            entry[1] += 1
        return {key: (value[0], value[1]) for key, value in sorted(counts.items())}

    def unsupported(self) -> list[RuleOutcome]:
        return sorted((r for r in self.rules if not r.compiled), key=lambda r: (r.logsource, r.file, r.id or ""))

    def reasons(self) -> Counter[str]:
        """Unsupported rules per reason (field names kept: they are the advice)."""
        return Counter(r.reason or "" for r in self.rules if not r.compiled)

    def collector_status(self, logsource: str) -> str:
        """`collected` when a collector writes a dataset of the log source's route, `mapping only` when
        the route exists but no collector feeds it yet, `not collected` when there is no route."""
        datasets = {d for r in self.rules if r.logsource == logsource for d in r.datasets}
        if not datasets:
            return NOT_COLLECTED
        return COLLECTED if datasets & set(DATASETS) else MAPPING_ONLY

    def to_json(self) -> dict[str, Any]:
        return {
            "totals": {"rules": len(self.rules), "compiled": sum(r.compiled for r in self.rules)},
            "by_product": {key: {"compiled": c, "total": t} for key, (c, t) in self.by("product").items()},
            "by_logsource": {
                key: {"compiled": c, "total": t, "collector": self.collector_status(key)}
                for key, (c, t) in self.by("logsource").items()
            },
            "rules": [
                {key: value for key, value in asdict(rule).items() if key != "title"}
                for rule in sorted(self.rules, key=lambda r: (r.file, r.id or ""))
            ],
        }


def _logsource_parts(doc: dict[str, Any]) -> tuple[str, str]:
    """(`product=x/category=y/service=z`, family) of a rule document."""
    if "correlation" in doc:
        return "(correlation)", "(correlation)"
    logsource = doc.get("logsource")
    if not isinstance(logsource, dict):
        return "(empty)", "(none)"
    parts = [f"{key}={logsource[key]}" for key in ("product", "category", "service") if logsource.get(key)]
    family = str(logsource.get("product") or logsource.get("category") or logsource.get("service") or "(none)")
    return "/".join(parts) or "(empty)", family


def _documents(root: Path, folders: Sequence[str]) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """(file relative to `root`, document or None when unreadable) for every rule document."""
    for folder in folders:
        base = root / folder
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.yml")):
            relative = path.relative_to(root).as_posix()
            try:
                docs = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
            except (yaml.YAMLError, UnicodeDecodeError):
                yield relative, None
                continue
            for doc in docs:
                yield relative, doc if isinstance(doc, dict) else None


def _route_datasets(doc: dict[str, Any]) -> tuple[str, ...]:
    logsource = doc.get("logsource")
    if not isinstance(logsource, dict):
        return ()
    route = find_route(SigmaLogSource(product=logsource.get("product"), category=logsource.get("category"),
                                     service=logsource.get("service")))
    return route.datasets if route else ()


def sigmahq_coverage(spark: Any, root: Path, folders: Sequence[str] = RULE_FOLDERS) -> CoverageReport:
    """Compile every rule document below `root/<folder>` and account for each exactly once.

    Raises `ValueError` when the compiler's results and the documents on disk do not pair up one to one
    (a rule lost or counted twice would make the report lie).
    """
    paths = [root / folder for folder in folders if (root / folder).is_dir()]
    if not paths:
        raise ValueError(f"no SigmaHQ rule folder ({', '.join(folders)}) below {root}")
    ruleset = RuleCompiler(spark).compile(paths)

    def relative(path: str | None) -> str:
        return Path(path).resolve().relative_to(root.resolve()).as_posix() if path else "(unknown)"

    # (file, id) -> (compiled, reason, datasets); a document without a usable id is matched by file alone.
    outcomes: dict[tuple[str, str | None], tuple[bool, str | None, tuple[str, ...]]] = {}

    def record(file: str, rule_id: str | None, value: tuple[bool, str | None, tuple[str, ...]]) -> None:
        if (file, rule_id) in outcomes:
            raise ValueError(f"{file}: rule {rule_id} reported twice by the compiler")
        outcomes[(file, rule_id)] = value

    for rule in ruleset.rules:
        record(relative(rule.path), rule.id, (True, None, rule.datasets))
    for problem in ruleset.unsupported:
        record(relative(problem.path), problem.id, (False, problem.reason, ()))

    report = CoverageReport()
    for file, doc in _documents(root, folders):
        logsource, family = _logsource_parts(doc) if doc is not None else ("(unreadable)", "(unreadable)")
        rule_id = str(doc["id"]) if doc is not None and doc.get("id") else None
        key = (file, rule_id) if (file, rule_id) in outcomes else (file, None)
        if key not in outcomes:
            raise ValueError(f"{file}: rule {rule_id} is neither compiled nor reported unsupported")
        compiled, reason, datasets = outcomes.pop(key)
        report.rules.append(RuleOutcome(
            id=rule_id, title=str(doc.get("title")) if doc is not None else None, file=file,
            logsource=logsource, product=family, compiled=compiled, reason=reason,
            datasets=datasets or (_route_datasets(doc) if doc is not None else ()),
        ))
    if outcomes:
        raise ValueError(f"compiler results with no rule document on disk: {sorted(outcomes, key=str)[:5]}")
    return report


# Why the cloud and identity rules that cannot run do not: per log source without a route, and per compiler
# reason (a field of the rule that the native record does not have). Shown in the report when it has them.
LOGSOURCE_GAPS: dict[str, str] = {
    "product=azure/service=pim": "Entra PIM alerts (Microsoft Graph `roleManagementAlerts`) are not among the "
    "sign-in, audit, risk and Activity records a diagnostic setting streams to Event Hub: nothing collects them.",
    "product=m365/service=threat_management": "Microsoft 365 alert records: the rules name `eventSource`, "
    "`eventName` and `status`, fields of no documented Management Activity API record (an alert "
    "(`SecurityComplianceAlerts`, RecordType 40) names itself in `Name`); not mapped rather than guessed.",
    "product=m365/service=threat_detection": "as threat_management: `eventSource`/`eventName`/`status` are no "
    "fields of a Management Activity API record.",
    "product=m365/service=exchange": "as threat_management: `eventSource`/`eventName`/`status` are no fields of a "
    "Management Activity API record (Exchange admin records are `o365.audit`, served by the m365/audit rules).",
    "product=gcp/service=google_workspace.admin": "Google Workspace Admin SDK reports (Elastic's google_workspace "
    "integration), not Cloud Audit Logs: nothing collects them.",
    "product=gcp/service=google_workspace.login": "Google Workspace login reports: as google_workspace.admin.",
}
_LIST_FIELD = ("a list of objects in the record: a dotted name cannot say which element "
               "(the whole list is matched with `TargetResources|contains`)")
FIELD_GAPS: dict[str, str] = {
    "field Status has no source in azure.signinlogs": "Log Analytics' `Status` is an object shown as "
    "Success/Failure with its details; the Event Hub record splits it (resultType, resultSignature, "
    "properties.status), and no one field answers both `Status: Success` and `Status|contains: MFA Denied`.",
    "field properties.message has no source in azure.signinlogs": "a field of the classic Activity Log shape; "
    "sign-in records have none.",
    "field ActivityDetails has no source in azure.signinlogs": "a placeholder of the rule (with `Username: UPN`), "
    "no field of a sign-in record.",
    "field Initiatedby has no source in azure.auditlogs": "a placeholder of the rule (`'UPN'`), no field of the "
    "record.",
    "field activityType has no source in azure.auditlogs": "Log Analytics only; the Event Hub audit record has "
    "`operationType` and `activityDisplayName`.",
    "field failure_status_reason has no source in azure.auditlogs": "a Log Analytics parsing of the details; in "
    "the Event Hub record it is an entry of the `additionalDetails` list.",
    "field ConsentContext.IsAdminConsent has no source in azure.auditlogs": "an entry of the `additionalDetails` "
    "list of the Event Hub record (`ConsentContext.IsAdminConsent` as a key/value pair).",
    "field additionalDetails.additionalInfo has no source in azure.auditlogs": _LIST_FIELD,
    "field TargetResources.ModifiedProperties.DisplayName has no source in azure.auditlogs": _LIST_FIELD,
    "field TargetResources.modifiedProperties has no source in azure.auditlogs": _LIST_FIELD,
    "field TargetResources.modifiedProperties.newValue has no source in azure.auditlogs": _LIST_FIELD,
    "field targetResources.type has no source in azure.auditlogs": _LIST_FIELD,
    "field data.protoPayload.authorizationInfo.permission has no source in gcp.audit": "`authorizationInfo` is a "
    "list; one element's permission cannot be named by a dotted path.",
    "field data.protoPayload.resource.type has no source in gcp.audit": "no field of the record: the LogEntry's "
    "`resource.type` is outside `protoPayload`.",
}


def _gap_lines(report: CoverageReport) -> list[str]:
    """The cloud gaps present in the report, with why each cannot run."""
    by_logsource = Counter(r.logsource for r in report.rules if not r.compiled)
    by_reason = report.reasons()
    rows = [f"| {key} | {by_logsource[key]} | {_cell(why)} |" for key, why in LOGSOURCE_GAPS.items()
            if by_logsource.get(key)]
    rows += [f"| {_cell(reason)} | {by_reason[reason]} | {_cell(why)} |" for reason, why in FIELD_GAPS.items()
             if by_reason.get(reason)]
    if not rows:
        return []
    return ["", "## Cloud and identity gaps", "",
            "The cloud and identity audit logs are collected (`collectors/cloud/`, mapped as Elastic's azure, "
            "o365, gcp, okta and github integrations map them); these rules still cannot run, and why:", "",
            "| log source or reason | rules | why |", "|---|---:|---|", *rows]


def _percent(compiled: int, total: int) -> str:
    return f"{100 * compiled / total:.1f}%" if total else "–"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: CoverageReport) -> str:
    """The human report: totals, per product and per log source, reasons, then every unsupported rule."""
    total = len(report.rules)
    compiled = sum(r.compiled for r in report.rules)
    lines = [
        "# SigmaHQ coverage",
        "",
        "Generated by `python -m correlator.authoring.sigmahq` from `../shared/corpora/sigmahq` "
        f"({', '.join(f'`{f}/`' for f in RULE_FOLDERS)}); do not edit by hand. "
        "`tests/correlator/test_coverage.py` fails when this report is out of date.",
        "",
        "A rule is **compiled** when it converts to Spark SQL for our event schema and passes Spark's "
        "analysis; it then runs on every event of its datasets. **Collector**: `collected` = a CitySOC "
        "collector writes the dataset; `mapping only` = the field mapping exists and the rule compiles, but "
        "no collector writes the dataset yet (it runs once one does); `not collected` = no route for the "
        "log source.",
        "",
        f"**{compiled} of {total} rule documents compiled ({_percent(compiled, total)}).**",
        "",
        "## Per product",
        "",
        "| product | compiled | total | % |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {key} | {c} | {t} | {_percent(c, t)} |" for key, (c, t) in report.by("product").items()]
    lines += ["", "## Per log source", "", "| log source | datasets | collector | compiled | total | % |",
              "|---|---|---|---:|---:|---:|"]
    for key, (c, t) in report.by("logsource").items():
        datasets = sorted({d for r in report.rules if r.logsource == key for d in r.datasets})
        lines.append(f"| {key} | {', '.join(datasets) or '–'} | {report.collector_status(key)} | {c} | {t} | "
                     f"{_percent(c, t)} |")
    lines += _gap_lines(report)
    lines += ["", "## Reasons", "", "| rules | reason |", "|---:|---|"]
    lines += [f"| {count} | {_cell(reason)} |" for reason, count in
              sorted(report.reasons().items(), key=lambda item: (-item[1], item[0]))]
    lines += ["", "## Unsupported rules", "", "| log source | id | file | reason |", "|---|---|---|---|"]
    lines += [f"| {r.logsource} | {r.id or '–'} | `{r.file}` | {_cell(r.reason or '')} |"
              for r in report.unsupported()]
    return "\n".join(lines) + "\n"


def write_report(report: CoverageReport, out: Path) -> tuple[Path, Path]:
    """Write `sigmahq.md` and `sigmahq.json` into `out`; returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    markdown, data = out / "sigmahq.md", out / "sigmahq.json"
    markdown.write_text(render_markdown(report), encoding="utf-8")
    data.write_text(json.dumps(report.to_json(), indent=1) + "\n", encoding="utf-8")
    return markdown, data


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m correlator.authoring.sigmahq",
                                     description="Compile every SigmaHQ rule and write the coverage report.")
    parser.add_argument("--sigmahq", type=Path, default=DEFAULT_SIGMAHQ,
                        help="the SigmaHQ folder (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    args = parser.parse_args(argv)
    if not args.sigmahq.is_dir():
        parser.error(f"{args.sigmahq} is not a directory: pass --sigmahq with the SigmaHQ release folder")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    spark = build_session(master="local[2]", shuffle_partitions=2, app_name="citysoc-coverage")
    try:
        report = sigmahq_coverage(spark, args.sigmahq)
    finally:
        spark.stop()
    markdown, data = write_report(report, args.out)
    compiled = sum(r.compiled for r in report.rules)
    print(f"{compiled} of {len(report.rules)} rules compiled; wrote {markdown} and {data}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
