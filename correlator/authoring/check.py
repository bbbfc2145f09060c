"""`soc rules check`: everything that can be known about a rule set without running it.

Checks, each finding naming `file:line`, the rule id and the check:
- `yaml`, `sigma`: the file is YAML and a valid Sigma rule (pySigma's parser is the schema);
- `validator:<name>`: pySigma's and SigmaHQ's validators (`pysigma-validators-sigmahq`), minus the
  exclusions in `EXCLUDED_VALIDATORS` (each with its reason);
- `unique-id`: ids are unique across every path given;
- `logsource-folder`: a rule under a folder named after a Sigma product (`aws/`, `linux/`) has that
  product;
- `attack-tag`: `attack.*` tactic and technique tags exist in the offline ATT&CK data (its version
  is named in the finding);
- `field`: every field a detection uses is known to the log source's mapping and the event schema;
- `evidence`: the rule's evidence (sidecar or inline) is well formed and its `ecs:` events name only fields of
  the event schema;
- `compile`: the rule compiles for our engine (optionally analysed by Spark against the schema).
A rule whose log source we do not collect is a warning: valid, but it cannot run here. A log source that
neither Sigma's taxonomy nor CitySOC knows (a typo such as `service: sudo`) is an error: it would never run.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sigma.collection import SigmaCollection
from sigma.plugins import InstalledSigmaPlugins
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule, SigmaRuleBase
from sigma.validation import SigmaValidator

from correlator.authoring.attack import AttackData
from correlator.authoring.evidence import evidence_for_rule
from correlator.compiler import RuleCompiler
from correlator.compiler.logsources import ROUTES, find_route
from correlator.errors import EvidenceError, RuleLocation
from correlator.model import UnsupportedRule
from correlator.sql import resolve_field

ERROR, WARNING = "error", "warning"

# Validators left out, and why (documented in docs/rules-ci.md).
EXCLUDED_VALIDATORS: dict[str, str] = {
    "attacktag": "replaced by the `attack-tag` check, which names the offline ATT&CK version",
    "d3_fendtag": "downloads MITRE D3FEND at run time (no network in CI); we use no d3fend tags",
    "sigmahq_fieldname_cast": "downloads SigmaHQ's taxonomy at run time; field names are checked by `field`",
    "sigmahq_invalid_fieldname": "downloads SigmaHQ's taxonomy at run time; field names are checked by `field`",
    "sigmahq_redundant_field": "downloads SigmaHQ's taxonomy at run time",
    "sigmahq_logsource_unknown": "downloads SigmaHQ's taxonomy at run time; log sources are checked by `compile`",
    "sigmahq_filename_prefix": "downloads SigmaHQ's file-name data; SigmaHQ's repository naming convention",
    "sigmahq_filename_convention": "SigmaHQ's repository naming convention, not ours",
    "sigmahq_correlation_filename_prefix": "SigmaHQ's repository naming convention, not ours",
    "sigmahq_category_event_id": "Windows event ids (downloads SigmaHQ data); we collect no Windows logs",
    "sigmahq_category_windows_provider_name": "Windows providers (downloads SigmaHQ data); no Windows logs",
    "sigmahq_sysmon_missing_eventid": "Sysmon only; we collect no Windows logs",
    "duplicate_filename": "file names may repeat across packs; ids are what must be unique (`unique-id`)",
    "identifier_uniqueness": "replaced by `unique-id`, which names both files",
}
# Our own custom attribute (group key, inline evidence): not an unknown field.
OWN_ATTRIBUTES = frozenset({"citysoc"})
SIGMA_PRODUCTS = frozenset({
    "aws", "azure", "gcp", "m365", "okta", "onelogin", "duo", "github", "google_workspace", "linux", "windows",
    "macos", "zeek", "cisco", "fortios", "paloalto", "jvm", "nodejs", "python", "ruby_on_rails", "spring",
    "django", "sql", "kubernetes", "qualys", "bitbucket", "huawei", "juniper",
} | {route.product for route in ROUTES})
# For the products we collect: the (category, service) pairs of Sigma's log-source taxonomy that SigmaHQ's
# rules use (2026), besides our own routes. A pair outside both is a typo or an invention (`service: sudo`):
# an error, since the rule would never run. Other products' taxonomies are not ours to judge: a warning.
SIGMA_LOGSOURCES: dict[str, frozenset[tuple[str | None, str | None]]] = {
    "linux": frozenset({(None, None), (None, "auditd"), (None, "auth"), (None, "clamav"), (None, "cron"),
                        (None, "guacamole"), (None, "sshd"), (None, "syslog"), (None, "vsftpd"),
                        ("file_event", None), ("network_connection", None), ("process_creation", None)}),
    "aws": frozenset({(None, "cloudtrail")}),
    "azure": frozenset({(None, "activitylogs"), (None, "auditlogs"), (None, "pim"), (None, "riskdetection"),
                        (None, "signinlogs")}),
    "gcp": frozenset({(None, "gcp.audit"), (None, "google_workspace.admin"), (None, "google_workspace.login")}),
    "m365": frozenset({(None, "audit"), (None, "exchange"), (None, "threat_detection"), (None, "threat_management")}),
    "okta": frozenset({(None, "okta")}),
    "github": frozenset({(None, "audit")}),
}


def unknown_logsource(product: str | None, category: str | None, service: str | None) -> str | None:
    """Why a log source is unknown to Sigma's taxonomy and to CitySOC's routes, or None when it is known (or not
    ours to judge)."""
    if product is None:
        return None
    if product not in SIGMA_PRODUCTS:
        return f"product {product!r} is not a Sigma product (known: {', '.join(sorted(SIGMA_PRODUCTS))})"
    known = SIGMA_LOGSOURCES.get(product)
    if known is None:
        return None
    routed = {(route.category, route.service) for route in ROUTES if route.product == product}
    if (category, service) in known | routed:
        return None
    names = sorted({f"service: {svc}" for _, svc in known | routed if svc} |
                   {f"category: {cat}" for cat, _ in known | routed if cat})
    return f"{product} has no such log source in Sigma's taxonomy or CitySOC's routes (known: {', '.join(names)})"


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    check: str
    location: RuleLocation
    rule_id: str | None
    message: str

    @classmethod
    def at(cls, severity: str, check: str, path: str, line: int, rule_id: str | None, message: str) -> Finding:
        return cls(severity, check, RuleLocation(path, line), rule_id, message)

    @property
    def where(self) -> str:
        where = self.location
        return f"{where.path}:{where.line}:{where.column}" if where.column else f"{where.path}:{where.line}"

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "check": self.check, "path": self.location.path,
                "line": self.location.line, "column": self.location.column, "rule_id": self.rule_id,
                "message": self.message}

    def __str__(self) -> str:
        rule = f" {self.rule_id}" if self.rule_id else ""
        return f"{self.where}: {self.severity} [{self.check}]{rule}: {self.message}"


class _Lines:
    """Line numbers of things in rule files (first line containing a text), read once per file."""

    def __init__(self) -> None:
        self._texts: dict[str, list[str]] = {}

    def lines(self, path: str) -> list[str]:
        if path not in self._texts:
            try:
                self._texts[path] = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                self._texts[path] = []
        return self._texts[path]

    def find(self, path: str | None, *patterns: str) -> int:
        """1-based line of the first pattern (a regex) found, trying them in order; 1 when none is."""
        if not path:
            return 0
        lines = self.lines(path)
        for pattern in patterns:
            regex = re.compile(pattern)
            for number, line in enumerate(lines, start=1):
                if regex.search(line):
                    return number
        return 1


def _path(rule: SigmaRuleBase) -> str:
    return str(rule.source.path) if rule.source is not None and rule.source.path else ""


def _tags(rule: SigmaRuleBase) -> list[str]:
    return [f"{tag.namespace}.{tag.name}" for tag in rule.tags]


def rule_files(paths: Sequence[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        files.extend(sorted(path.rglob("*.yml")) if path.is_dir() else [path])
    return files


def _detection_fields(detection: SigmaDetection | SigmaDetectionItem) -> Iterator[str]:
    if isinstance(detection, SigmaDetectionItem):
        if detection.field:
            yield detection.field
        return
    for item in detection.detection_items:
        yield from _detection_fields(item)


class RuleSetChecker:
    """Runs every check over rule paths; `spark` adds Spark's analysis of each compiled expression."""

    def __init__(self, attack: AttackData, *, spark: Any | None = None,
                 validators: Iterable[str] | None = None) -> None:
        self.attack = attack
        self.spark = spark
        self.validator_names = validators
        self._lines = _Lines()

    def check(self, paths: Sequence[Path]) -> list[Finding]:
        compiler = RuleCompiler(spark=self.spark)
        collection, problems = compiler.load(paths)
        findings = [self._load_problem(problem) for problem in problems]
        rules = list(collection.rules)
        findings += self._sigma_errors(rules)
        valid = [rule for rule in rules if not rule.errors]
        findings += self._unique_ids(valid)
        findings += self._validators(valid)
        for rule in valid:
            findings += self._folder(rule, paths)
            findings += self._attack_tags(rule)
        findings += self._evidence(valid)
        field_findings = [f for rule in valid for f in self._fields(rule)]
        findings += field_findings
        findings += self._compile(compiler, paths, {f.rule_id for f in field_findings}, valid)
        return sorted(set(findings), key=lambda f: (f.location, f.check, f.message))

    # Individual checks ---------------------------------------------------------------------------

    def _load_problem(self, problem: UnsupportedRule) -> Finding:
        match = re.search(r"line (\d+)", problem.reason)
        line = problem.location.line or (int(match.group(1)) if match else 1)
        return Finding(ERROR, "yaml" if "YAML" in problem.reason else "sigma",
                       RuleLocation(problem.location.path, line, problem.location.column), problem.id, problem.reason)

    def _sigma_errors(self, rules: Sequence[SigmaRuleBase]) -> list[Finding]:
        findings = []
        for rule in rules:
            for error in rule.errors:
                path = _path(rule)
                text = str(error).splitlines()[0] if str(error) else type(error).__name__
                key = re.findall(r"'([^']+)'", text)
                line = self._lines.find(path, *(rf"\b{re.escape(k)}\b" for k in key[:1])) if key else 1
                findings.append(Finding.at(ERROR, "sigma", path, line, str(rule.id) if rule.id else None,
                                           f"not a valid Sigma rule: {text}"))
        return findings

    def _unique_ids(self, rules: Sequence[SigmaRuleBase]) -> list[Finding]:
        findings = []
        first: dict[str, SigmaRuleBase] = {}
        for rule in rules:
            path = _path(rule)
            if rule.id is None:
                findings.append(Finding.at(ERROR, "unique-id", path, self._lines.find(path, r"^title:"), None,
                                           "rule has no id: give it a random uuid4 (alert ids are derived from it)"))
                continue
            rule_id = str(rule.id)
            if rule_id in first:
                other = first[rule_id]
                line = self._lines.find(_path(other), rf"^id:\s*{re.escape(rule_id)}")
                findings.append(Finding.at(
                    ERROR, "unique-id", path, self._lines.find(path, rf"^id:\s*{re.escape(rule_id)}"), rule_id,
                    f"duplicate rule id: also used by {_path(other)}:{line} ({other.title}); give one a new uuid4"))
            else:
                first[rule_id] = rule
        return findings

    def _validators(self, rules: Sequence[SigmaRuleBase]) -> list[Finding]:
        available: dict[str, Any] = dict(InstalledSigmaPlugins.autodiscover().validators)
        names = list(self.validator_names) if self.validator_names is not None else \
            [name for name in available if name not in EXCLUDED_VALIDATORS]
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValueError(f"unknown validator(s) {', '.join(unknown)}; known: {', '.join(sorted(available))}")
        findings = []
        collection: Any = SigmaCollection(list(rules))  # type: ignore[arg-type]
        for name in names:  # one validator at a time, so every finding names its validator
            for issue in SigmaValidator([available[name]]).validate_rules(collection):
                details = {k: v for k, v in vars(issue).items() if k != "rules"}
                values = {str(x) for v in details.values() for x in (v if isinstance(v, list | tuple) else [v])}
                if OWN_ATTRIBUTES & values:
                    continue
                severity = ERROR if issue.severity.name == "HIGH" else WARNING
                hint = ", ".join(f"{k}={v}" for k, v in details.items())
                needles = [re.escape(str(getattr(v, "name", v))) for v in details.values()
                           if isinstance(v, str | int) or hasattr(v, "name")]
                for rule in issue.rules:
                    path = _path(rule)
                    findings.append(Finding.at(severity, f"validator:{name}", path, self._lines.find(path, *needles),
                                               str(rule.id) if rule.id else None,
                                               issue.description + (f" ({hint})" if hint else "")))
        return findings

    def _folder(self, rule: SigmaRuleBase, roots: Sequence[Path]) -> list[Finding]:
        if not isinstance(rule, SigmaRule):
            return []
        path = _path(rule)
        product = rule.logsource.product
        parts = Path(path).resolve().parts
        for root in roots:
            root_parts = root.resolve().parts
            if parts[:len(root_parts)] == root_parts:
                parts = parts[len(root_parts):]
                break
        folders = [part for part in parts[:-1] if part in SIGMA_PRODUCTS]
        if folders and product != folders[-1]:
            line = self._lines.find(path, r"^\s+product:", r"^logsource:")
            return [Finding.at(ERROR, "logsource-folder", path, line, str(rule.id),
                               f"rule is in folder {folders[-1]}/ but its logsource product is {product or '(none)'}: "
                               f"move the file or fix the log source")]
        return []

    def _attack_tags(self, rule: SigmaRuleBase) -> list[Finding]:
        path = _path(rule)
        return [Finding.at(ERROR, "attack-tag", path, self._lines.find(path, rf"-\s*{re.escape(tag)}\s*$"),
                           str(rule.id), f"{tag} is not a tactic or technique of ATT&CK v{self.attack.version} "
                           f"(offline data: {self.attack.source or 'attack-enterprise.json'})")
                for tag in self.attack.unknown_tags(_tags(rule))]

    def _evidence(self, rules: Sequence[SigmaRuleBase]) -> list[Finding]:
        findings = []
        for path in sorted({_path(rule) for rule in rules if _path(rule)}):
            rule_id = next((str(rule.id) for rule in rules if _path(rule) == path and rule.id), None)
            try:
                evidence_for_rule(Path(path))
            except EvidenceError as exc:
                text = str(exc)
                where = re.match(r"(?P<path>.+?):(?P<line>\d+)(?::(?P<column>\d+))?: ?", text)
                location = RuleLocation(where["path"], int(where["line"]), int(where["column"] or 0)) if where \
                    else RuleLocation(path, 1)
                findings.append(Finding(ERROR, "evidence", location, rule_id, text[where.end():] if where else text))
        return findings

    def _fields(self, rule: SigmaRuleBase) -> list[Finding]:
        if not isinstance(rule, SigmaRule):
            return []
        route = find_route(rule.logsource)
        if route is None:
            return []
        path = _path(rule)
        findings = []
        seen: set[str] = set()
        for detection in rule.detection.detections.values():
            for name in _detection_fields(detection):
                if name in seen:
                    continue
                seen.add(name)
                mapped = route.map_field(name)
                if resolve_field(mapped) is None:
                    via = f" (mapped to {mapped})" if mapped != name else ""
                    findings.append(Finding.at(
                        ERROR, "field", path, self._lines.find(path, rf"^\s+{re.escape(name)}(\||:)"), str(rule.id),
                        f"field {name}{via} is not in the {'/'.join(route.datasets)} schema; "
                        "use an ECS name of citysoc/schema.py or a mapped source name"))
        return findings

    def _compile(self, compiler: RuleCompiler, paths: Sequence[Path], with_field_findings: set[str | None],
                 rules: Sequence[SigmaRuleBase]) -> list[Finding]:
        unknown_sources = {
            str(rule.id): why for rule in rules if isinstance(rule, SigmaRule)
            and (why := unknown_logsource(rule.logsource.product, rule.logsource.category, rule.logsource.service))}
        findings = []
        result = compiler.compile(paths)
        for problem in result.unsupported:
            reason = problem.reason
            if reason.startswith(("not valid YAML", "not a valid Sigma rule", "duplicate rule id", "rule has no id")):
                continue  # reported by the yaml/sigma/unique-id checks
            if problem.id in with_field_findings and reason.startswith("field "):
                continue  # each unknown field is reported with its line by the `field` check
            path = problem.path or ""
            not_collected = reason.startswith("log source")
            if not_collected and problem.id in unknown_sources:
                line = self._lines.find(path, r"^\s+service:", r"^\s+category:", r"^\s+product:", r"^logsource:")
                findings.append(Finding.at(
                    ERROR, "logsource", path, line, problem.id,
                    f"unknown log source: {unknown_sources[problem.id]}; the rule would never run"))
                continue
            line = self._lines.find(path, r"^logsource:", r"^correlation:") if not_collected else \
                self._lines.find(path, r"^detection:", r"^correlation:")
            findings.append(Finding.at(WARNING if not_collected else ERROR, "compile", path, line, problem.id,
                                       reason + ("; it cannot run here" if not_collected else "")))
        return findings


def summarise(findings: Sequence[Finding]) -> dict[str, int]:
    return {"errors": sum(f.severity == ERROR for f in findings),
            "warnings": sum(f.severity == WARNING for f in findings)}
