"""`soc rules test`: every rule's evidence through the compiled engine, one Spark pass, one report.

`run_rule_tests` compiles the rule paths (Spark analysis on), gathers each rule's evidence (sidecar or
inline), runs all cases of all rules in one `check_evidence` pass and returns a `RuleTestReport`:
one `RuleTestResult` per rule, each case's outcome pointing at `file:line` in the evidence file.
`junit_xml` renders it as JUnit XML with one testcase per example or sequence.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from correlator.authoring.evidence import (
    EvidenceCase,
    EvidenceOutcome,
    RawParser,
    check_evidence,
    evidence_for_rule,
    prepare_evidence,
)
from correlator.compiler import RuleCompiler
from correlator.engine.session import SessionStart
from correlator.errors import EvidenceError
from correlator.model import CompiledRuleSet, UnsupportedRule

PASS, FAIL, UNTESTED, NOT_RUNNABLE = "pass", "fail", "untested", "not-runnable"


@dataclass
class RuleTestResult:
    rule_id: str | None
    title: str | None
    path: str
    status: str  # pass | fail | untested (no evidence) | not-runnable (cannot compile)
    outcomes: list[EvidenceOutcome] = field(default_factory=list)
    problem: str | None = None  # evidence file error, or why the rule cannot run

    @property
    def failures(self) -> list[EvidenceOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]


@dataclass
class RuleTestReport:
    results: list[RuleTestResult] = field(default_factory=list)
    seconds: float = 0.0
    require_evidence: bool = False

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def cases(self) -> int:
        return sum(len(result.outcomes) for result in self.results)

    @property
    def ok(self) -> bool:
        if self.count(FAIL):
            return False
        return not (self.require_evidence and self.count(UNTESTED))


def _gather(ruleset: CompiledRuleSet) -> tuple[dict[str, list[EvidenceCase]], dict[str, RuleTestResult]]:
    cases: dict[str, list[EvidenceCase]] = {}
    results: dict[str, RuleTestResult] = {}
    for rule in ruleset.rules:
        result = RuleTestResult(rule.id, rule.title, rule.path, PASS)
        results[rule.id] = result
        try:
            found = evidence_for_rule(Path(rule.path)) if rule.path else None
        except (EvidenceError, OSError) as exc:
            result.status, result.problem = FAIL, str(exc)
            continue
        if found is None:
            result.status = UNTESTED
        else:
            cases[rule.id] = found
    return cases, results


def _not_runnable(problem: UnsupportedRule) -> RuleTestResult:
    """A rule that cannot compile fails when it has evidence (someone expects it to run)."""
    has_evidence = False
    problem_text = problem.reason
    if problem.path and problem.path.endswith(".yml"):
        try:
            has_evidence = evidence_for_rule(Path(problem.path)) is not None
        except (EvidenceError, OSError, AttributeError, ValueError):
            has_evidence = True
    return RuleTestResult(problem.id, problem.title, problem.path, FAIL if has_evidence else NOT_RUNNABLE,
                          problem=problem_text)


def rule_of_change(path: Path) -> Path:
    """The rule file a saved file belongs to: itself, or the rule of an `x.evidence.yaml` sidecar (`x.yml`)."""
    if path.name.endswith(".evidence.yaml"):
        return path.with_name(path.name.removesuffix(".evidence.yaml") + ".yml")
    return path


def run_rule_tests(spark: SparkSession | SessionStart, paths: Sequence[Path], *, raw_parser: RawParser | None,
                   require_evidence: bool = False, only: Collection[Path] | None = None) -> RuleTestReport:
    """Compile the rules under `paths` and run their evidence; with `only` (rule files), run and report just the
    cases of those rules (the whole set is still compiled, so correlations resolve the rules they refer to).
    With a `SessionStart`, the rules are parsed, compiled and their evidence read while the session starts."""
    started = time.perf_counter()
    ruleset = RuleCompiler().compile(paths)  # Sigma to SQL needs no Spark; Spark's analysis follows
    cases, results = _gather(ruleset)
    prepared = None
    if isinstance(spark, SessionStart) and only is None and cases:  # the cases' events, while Spark starts
        prepared = prepare_evidence(ruleset, cases, raw_parser=raw_parser)
    session = spark.get() if isinstance(spark, SessionStart) else spark
    RuleCompiler(session).verify(ruleset)
    analysed = {rule.id for rule in ruleset.rules}  # a rule Spark refused is reported as not runnable
    results = {rid: result for rid, result in results.items() if rid in analysed}
    if not analysed.issuperset(cases):  # (then the events are prepared again, without its cases)
        cases = {rid: found for rid, found in cases.items() if rid in analysed}
    if only is not None:
        wanted = {path.resolve() for path in only}
        results = {rid: r for rid, r in results.items() if r.path and Path(r.path).resolve() in wanted}
        cases = {rid: found for rid, found in cases.items() if rid in results}
    outcomes = check_evidence(session, ruleset, cases, raw_parser=raw_parser, prepared=prepared) if cases else []
    for outcome in outcomes:
        result = results[outcome.rule_id]
        result.outcomes.append(outcome)
        if not outcome.ok:
            result.status = FAIL
    report = RuleTestReport(require_evidence=require_evidence)
    report.results = sorted(results.values(), key=lambda r: (r.path or "", r.rule_id or ""))
    report.results += [_not_runnable(problem) for problem in ruleset.unsupported
                       if only is None or (problem.path and Path(problem.path).resolve() in wanted)]
    report.seconds = time.perf_counter() - started
    return report


def junit_xml(report: RuleTestReport) -> str:
    """JUnit XML: one testsuite, one testcase per evidence case (plus one per rule that failed as a whole)."""
    suite = ET.Element("testsuite", name="citysoc-rules", time=f"{report.seconds:.3f}")
    tests = failures = skipped = 0
    for result in report.results:
        classname = f"{result.title} ({result.rule_id})"
        if result.status in (UNTESTED, NOT_RUNNABLE) or (result.problem and not result.outcomes):
            tests += 1
            case = ET.SubElement(suite, "testcase", classname=classname, name="evidence", file=result.path or "")
            if result.status == FAIL:
                failures += 1
                ET.SubElement(case, "failure", message=result.problem or "failed").text = result.problem
            else:
                skipped += 1
                reason = "no evidence" if result.status == UNTESTED else f"cannot run: {result.problem}"
                if result.status == UNTESTED and report.require_evidence:
                    failures += 1
                    ET.SubElement(case, "failure", message="rule has no evidence").text = "rule has no evidence"
                    skipped -= 1
                else:
                    ET.SubElement(case, "skipped", message=reason)
            continue
        for outcome in result.outcomes:
            tests += 1
            evidence = outcome.case
            case = ET.SubElement(suite, "testcase", classname=classname,
                                 name=evidence.description or f"{evidence.kind} at line {evidence.location.line}",
                                 file=evidence.location.path, line=str(evidence.location.line))
            if outcome.skipped:
                skipped += 1
                ET.SubElement(case, "skipped", message=outcome.skipped)
            elif not outcome.ok:
                failures += 1
                ET.SubElement(case, "failure", message=outcome.explain()).text = outcome.explain()
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    root = ET.Element("testsuites", tests=str(tests), failures=str(failures), time=f"{report.seconds:.3f}")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
