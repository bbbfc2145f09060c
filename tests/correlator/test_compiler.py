"""The compile report: every rule is compiled or unsupported with a reason, checked by Spark analysis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from correlator.compiler import RuleCompiler

pytestmark = pytest.mark.slow


def _rule_documents(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*.yml") for doc in yaml.safe_load_all(path.read_text()) if doc)


@pytest.mark.parametrize(("folder", "min_share"), [("cloud/aws", 0.9), ("linux", 0.0)])
def test_sigmahq_compile_report(spark: Any, corpora: Path, folder: str, min_share: float) -> None:
    directory = corpora / "sigmahq" / "rules" / folder
    ruleset = RuleCompiler(spark).compile([directory])
    compiled, unsupported = len(ruleset.rules), len(ruleset.unsupported)
    reasons = Counter(u.reason for u in ruleset.unsupported)
    print(f"\nsigmahq {folder}: {compiled} compiled, {unsupported} unsupported")
    for reason, count in reasons.most_common():
        print(f"  {count:4d}  {reason}")
    assert ruleset.verified
    assert compiled + unsupported == _rule_documents(directory)  # nothing silently skipped
    assert all(u.reason and u.path for u in ruleset.unsupported)
    assert compiled / (compiled + unsupported) >= min_share
    assert not any("Spark analysis failed" in reason for reason in reasons)


def test_spark_analysis_failure_is_reported_with_error_class(spark: Any, tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("""
title: Compares a list with a number
id: 55555555-5555-4555-8555-555555555555
logsource: {product: linux, service: auth}
detection:
    selection: {event.category|gt: 5}
    condition: selection
""")
    ruleset = RuleCompiler(spark).compile([tmp_path])
    assert ruleset.rules == []
    [problem] = ruleset.unsupported
    assert problem.id == "55555555-5555-4555-8555-555555555555"
    assert problem.reason.startswith("Spark analysis failed: DATATYPE_MISMATCH")
