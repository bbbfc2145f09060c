"""What alerts tell the case API about grouping: the rule's `citysoc: {group_by, window}` and the last event's time."""

from __future__ import annotations

from pathlib import Path

from correlator.compiler import RuleCompiler
from correlator.engine.alerts import correlation_alert, detection_alert

RULE = """
title: Root Login Accepted
id: {rule_id}
name: root_accepted
logsource: {{product: linux, service: sshd}}
detection:
    selection: {{system.auth.ssh.event: Accepted, user.name: root}}
    condition: selection
level: high
citysoc:
    group_by: [source.ip]
    window: {window}
"""
BRUTE = """
title: Many Root Logins
id: 7d7e3c1a-51a5-4c3c-9f0e-3d7a2b1c0f11
correlation:
    type: event_count
    rules: [root_accepted]
    group-by: [source.ip]
    timespan: 5m
    condition: {gte: 3}
level: high
citysoc: {window: 1d}
"""


def _compile(tmp_path: Path, window: str, *extra: str) -> tuple[dict[str, object], list[str]]:
    (tmp_path / "rule.yml").write_text(RULE.format(rule_id="5b0c3f61-3c8e-4c83-a0a8-3c1b2b7e9d01", window=window))
    for number, text in enumerate(extra):
        (tmp_path / f"extra{number}.yml").write_text(text)
    ruleset = RuleCompiler().compile([tmp_path])
    return {rule.id: rule for rule in ruleset.rules}, [u.reason for u in ruleset.unsupported]


def test_rule_window_and_group_by_reach_the_alert(tmp_path: Path) -> None:
    rules, problems = _compile(tmp_path, "2h", BRUTE)
    assert problems == []
    rule = rules["5b0c3f61-3c8e-4c83-a0a8-3c1b2b7e9d01"]
    alert = detection_alert(rule, tenant="t", dataset="system.auth", event_id="e1", ts_us=0,
                            entities={"source.ip": ["203.0.113.50"]}, group_key="source.ip=203.0.113.50")
    assert alert["incident"] == {"group_by": ["source.ip"], "window_seconds": 7200}

    burst = rules["7d7e3c1a-51a5-4c3c-9f0e-3d7a2b1c0f11"]
    alert = correlation_alert(burst, tenant="t", datasets=["system.auth"], group_key="source.ip=203.0.113.50",
                              window_start_us=0, window_end_us=300_000_000, event_ids=["e1", "e2", "e3"], count=3,
                              entities={"source.ip": ["203.0.113.50"]}, last_event_us=125_000_000)
    assert alert["incident"] == {"group_by": ["source.ip"], "window_seconds": 86400}
    # `@timestamp` is the window's start; `event.end` the last event, not the window's end.
    assert (alert["@timestamp"], alert["event"]["end"]) == ("1970-01-01T00:00:00.000Z", "1970-01-01T00:02:05.000Z")


def test_a_bad_window_makes_the_rule_unsupported_with_the_reason(tmp_path: Path) -> None:
    rules, problems = _compile(tmp_path, "30s")
    assert rules == {}
    assert problems == ["citysoc window '30s' is outside 1m..30d (how far apart alerts of one case may be)"]
    _, problems = _compile(tmp_path, "two hours")
    assert len(problems) == 1 and problems[0].startswith("citysoc window: 'two hours' is not a duration")
