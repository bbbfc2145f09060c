"""Compiling Sigma correlation rules: every type, aliases, chaining, `generate`, and what is refused."""

from __future__ import annotations

from pathlib import Path

from correlator.compiler import RuleCompiler
from correlator.model import ChainedReference, CompiledRuleSet
from tests.correlator.builders import compile_text

BASES = """
title: failed
id: 11111111-0000-4000-8000-000000000001
name: failed
logsource: {product: linux, service: sshd}
detection: {selection: {system.auth.ssh.event: Failed}, condition: selection}
---
title: accepted
id: 11111111-0000-4000-8000-000000000002
name: accepted
logsource: {product: linux, service: sshd}
detection: {selection: {system.auth.ssh.event: Accepted}, condition: selection}
---
title: key created
id: 11111111-0000-4000-8000-000000000003
name: key_created
logsource: {product: aws, service: cloudtrail}
detection: {selection: {eventName: CreateAccessKey}, condition: selection}
"""


def _compile(tmp_path: Path, correlations: str) -> CompiledRuleSet:
    return compile_text(tmp_path, BASES + "---\n" + correlations)


def _unsupported(tmp_path: Path, correlations: str) -> list[str]:
    (tmp_path / "rules.yml").write_text(BASES + "---\n" + correlations, encoding="utf-8")
    return [problem.reason for problem in RuleCompiler().compile([tmp_path]).unsupported]


def test_every_type_compiles_with_its_measure(tmp_path: Path) -> None:
    text = "\n---\n".join(f"""
title: {kind}
id: 22222222-0000-4000-8000-00000000000{number}
correlation:
    type: {kind}
    rules: [failed, accepted]
    group-by: [source.ip]
    timespan: 10m
    {condition}
""" for number, (kind, condition) in enumerate([
        ("event_count", "condition: {gte: 10}"),
        ("value_count", "condition: {field: user.name, gte: 5}"),
        ("temporal", ""),
        ("temporal_ordered", ""),
        ("value_sum", "condition: {field: source.port, gt: 100000}"),
        ("value_avg", "condition: {field: source.port, lt: 1024}"),
        ("value_percentile", "condition: {field: source.port, percentile: 95, gte: 60000}"),
        ("value_median", "condition: {field: source.port, gte: 30000}"),
    ]))
    specs = {rule.title: rule.correlation for rule in _compile(tmp_path, text).correlations()}
    assert len(specs) == 8 and all(spec is not None for spec in specs.values())
    temporal, ordered = specs["temporal"], specs["temporal_ordered"]
    assert temporal is not None and ordered is not None
    # temporal types without a condition: all referenced rules (pySigma's default, gte their number)
    assert (temporal.op, temporal.count) == (ordered.op, ordered.count) == ("gte", 2)
    assert ordered.rule_ids == ("11111111-0000-4000-8000-000000000001", "11111111-0000-4000-8000-000000000002")
    percentile, median = specs["value_percentile"], specs["value_median"]
    assert percentile is not None and median is not None
    assert (percentile.percentile, percentile.count, percentile.value_expr) == (95.0, 60000, "`source`.`port`")
    assert median.percentile == 50.0
    assert all(spec.group_exprs == ("`source`.`ip`",) for spec in specs.values() if spec)


def test_aliases_read_a_field_per_referenced_rule(tmp_path: Path) -> None:
    ruleset = _compile(tmp_path, """
title: failed then key from the same address
id: 33333333-0000-4000-8000-000000000001
correlation:
    type: temporal
    rules: [failed, key_created]
    group-by: [address]
    timespan: 1h
    aliases:
        address: {failed: source.ip, key_created: sourceIPAddress}
""")
    [rule] = ruleset.correlations()
    spec = rule.correlation
    assert spec is not None
    assert spec.fields_for("11111111-0000-4000-8000-000000000001") == (("`source`.`ip`",), None)
    # CloudTrail's sourceIPAddress maps to source.address
    assert spec.fields_for("11111111-0000-4000-8000-000000000003") == (("`source`.`address`",), None)
    assert rule.datasets == ("aws.cloudtrail", "system.auth")


def test_chained_correlation_and_generate(tmp_path: Path) -> None:
    ruleset = _compile(tmp_path, """
title: burst
id: 44444444-0000-4000-8000-000000000001
name: burst
correlation: {type: event_count, rules: [failed], group-by: [source.ip, user.name], timespan: 5m,
              condition: {gte: 10}}
---
title: burst then login
id: 44444444-0000-4000-8000-000000000002
correlation:
    type: temporal_ordered
    rules: [burst, accepted]
    group-by: [ip]
    aliases:
        ip: {burst: source.ip, accepted: source.ip}
    timespan: 30m
""")
    chain = ruleset.by_id("44444444-0000-4000-8000-000000000002")
    assert chain.correlation is not None
    assert chain.correlation.chained == (ChainedReference("44444444-0000-4000-8000-000000000001", (0,), None),)
    assert chain.correlation.base_rule_ids == ("11111111-0000-4000-8000-000000000002",)
    generating = {rule.title: rule.generate for rule in ruleset.rules}
    # without `generate: true`, what a correlation references raises no alert of its own, a chained
    # correlation included; the outermost rule does
    assert generating == {"failed": False, "accepted": False, "key created": True, "burst": False,
                          "burst then login": True}
    (tmp_path / "rules.yml").write_text(
        (tmp_path / "rules.yml").read_text().replace("    timespan: 30m", "    timespan: 30m\n    generate: true"))
    generating = {rule.title: rule.generate for rule in RuleCompiler().compile([tmp_path]).rules}
    assert generating["burst"] and generating["accepted"] and not generating["failed"]


def test_what_cannot_run_is_reported_with_advice(tmp_path: Path) -> None:
    reasons = _unsupported(tmp_path, """
title: burst by user
id: 55555555-0000-4000-8000-000000000001
name: burst_by_user
correlation: {type: event_count, rules: [failed], group-by: [user.name], timespan: 5m, condition: {gte: 10}}
---
title: chain on a field the burst does not keep
id: 55555555-0000-4000-8000-000000000002
correlation: {type: temporal_ordered, rules: [burst_by_user, accepted], group-by: [source.ip], timespan: 30m}
---
title: one
id: 55555555-0000-4000-8000-000000000003
name: one
correlation: {type: event_count, rules: [two], group-by: [source.ip], timespan: 5m, condition: {gte: 2}}
---
title: two
id: 55555555-0000-4000-8000-000000000004
name: two
correlation: {type: event_count, rules: [one], group-by: [source.ip], timespan: 5m, condition: {gte: 2}}
---
title: extended
id: 55555555-0000-4000-8000-000000000005
correlation: {type: temporal, rules: [failed, accepted], group-by: [source.ip], timespan: 5m,
              condition: failed and not accepted}
---
title: missing
id: 55555555-0000-4000-8000-000000000006
correlation: {type: event_count, rules: [nowhere], group-by: [source.ip], timespan: 5m, condition: {gte: 2}}
""")
    assert any("groups by user.name: source.ip is not among its group-by fields" in r for r in reasons), reasons
    assert any("cycle" in r for r in reasons), reasons
    assert any("extended (boolean) correlation conditions are not supported" in r for r in reasons), reasons
    assert any("references rule nowhere, which is missing or unsupported" in r for r in reasons), reasons
