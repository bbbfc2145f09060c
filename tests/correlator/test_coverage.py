"""SigmaHQ coverage: targets per product, every rule document accounted once, committed report up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from correlator.authoring.sigmahq import (
    DEFAULT_OUT,
    FIELD_GAPS,
    LOGSOURCE_GAPS,
    RULE_FOLDERS,
    CoverageReport,
    sigmahq_coverage,
    write_report,
)

pytestmark = pytest.mark.slow
TARGETS = {"aws": 0.95, "linux": 0.95}
REGENERATE = "regenerate it with `python -m correlator.authoring.sigmahq` and commit docs/coverage/"


@pytest.fixture(scope="module")
def report(spark: Any, corpora: Path) -> CoverageReport:
    return sigmahq_coverage(spark, corpora / "sigmahq")


@pytest.mark.parametrize(("product", "target"), sorted(TARGETS.items()))
def test_target_share_of_rules_compiles(report: CoverageReport, product: str, target: float) -> None:
    compiled, total = report.by("product")[product]
    assert compiled / total >= target, (
        f"{product}: {compiled}/{total} compiled; unsupported: "
        + "; ".join(f"{r.file}: {r.reason}" for r in report.unsupported() if r.product == product)
    )


def test_every_rule_document_is_accounted_for_once(report: CoverageReport, corpora: Path) -> None:
    root = corpora / "sigmahq"
    on_disk = [
        path.relative_to(root).as_posix()
        for folder in RULE_FOLDERS if (root / folder).is_dir()
        for path in sorted((root / folder).rglob("*.yml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None
    ]
    assert sorted(r.file for r in report.rules) == sorted(on_disk)
    keys = [(r.file, r.id) for r in report.rules]
    assert len(keys) == len(set(keys))
    assert all(r.reason for r in report.rules if not r.compiled)
    assert all(r.reason is None for r in report.rules if r.compiled)


def test_committed_report_is_up_to_date(report: CoverageReport, tmp_path: Path) -> None:
    committed_path = DEFAULT_OUT / "sigmahq.json"
    assert committed_path.is_file(), f"{committed_path} is missing: {REGENERATE}"
    committed = json.loads(committed_path.read_text(encoding="utf-8"))
    _, fresh_path = write_report(report, tmp_path)
    fresh = json.loads(fresh_path.read_text(encoding="utf-8"))
    assert fresh["totals"] == committed["totals"], REGENERATE
    assert fresh["by_logsource"] == committed["by_logsource"], REGENERATE

    def unsupported(data: dict[str, Any]) -> list[tuple[str, str | None]]:
        return [(rule["file"], rule["id"]) for rule in data["rules"] if not rule["compiled"]]

    assert unsupported(fresh) == unsupported(committed), REGENERATE
    markdown = (DEFAULT_OUT / "sigmahq.md").read_text(encoding="utf-8")
    compiled, total = fresh["totals"]["compiled"], fresh["totals"]["rules"]
    assert f"**{compiled} of {total} rule documents compiled" in markdown, REGENERATE


def test_every_cloud_rule_that_cannot_run_says_why(report: CoverageReport) -> None:
    """The cloud and identity sources are collected: each SigmaHQ rule of theirs that still cannot run is
    explained in the report (no route for its log source, or a field the native record does not have)."""
    cloud = {"azure", "m365", "gcp", "okta", "github"}
    unexplained = [(r.file, r.reason) for r in report.unsupported() if r.product in cloud
                   and r.logsource not in LOGSOURCE_GAPS and r.reason not in FIELD_GAPS]
    assert not unexplained, unexplained
    for logsource in ("product=azure/service=signinlogs", "product=azure/service=auditlogs",
                      "product=azure/service=activitylogs", "product=azure/service=riskdetection",
                      "product=m365/service=audit", "product=gcp/service=gcp.audit", "product=okta/service=okta",
                      "product=github/service=audit"):
        assert report.collector_status(logsource) == "collected", logsource
