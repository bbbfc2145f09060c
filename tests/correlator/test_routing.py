"""Routing: which rules an event can match, derived from the Sigma tree, and results identical to no routing."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import correlator.job as job
import correlator.routing as routing
from correlator.compiler import CompiledRule, CompiledRuleSet, RuleCompiler
from correlator.job import match_rules, read_events
from correlator.normalize import inline_normalized, routed_only_fields
from correlator.routing import RouteKey, plan_chunks, route_fields
from tests.correlator.builders import cloudtrail, ssh, write_lake

MIXED_RULES = """
title: single action
id: 00000000-0000-4000-8000-000000000001
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: cloudtrail.amazonaws.com, eventName: StopLogging}
    condition: selection
---
title: several actions, one of them lower-case in the rule
id: 00000000-0000-4000-8000-000000000002
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: [DeleteTrail, updatetrail, PutEventSelectors]}
    condition: selection
---
title: two selections, each naming actions
id: 00000000-0000-4000-8000-000000000003
logsource: {product: aws, service: cloudtrail}
detection:
    keys: {eventName: CreateAccessKey}
    users: {eventName: CreateUser, userIdentity.type: Root}
    condition: 1 of keys or users
---
title: not - must not be routed
id: 00000000-0000-4000-8000-000000000004
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: StopLogging}
    condition: not selection
---
title: selection and not filter - routed on the selection
id: 00000000-0000-4000-8000-000000000005
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: CreateAccessKey}
    filter: {userIdentity.userName: alice}
    condition: selection and not filter
---
title: wildcard action, routed on the provider
id: 00000000-0000-4000-8000-000000000006
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventSource: iam.amazonaws.com, eventName|startswith: Create}
    condition: selection
---
title: only a generic field
id: 00000000-0000-4000-8000-000000000007
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {userIdentity.type: Root}
    condition: selection
---
title: branches on different fields - no route
id: 00000000-0000-4000-8000-000000000008
logsource: {product: aws, service: cloudtrail}
detection:
    action: {eventName: DeleteBucket}
    error: {errorCode: AccessDenied}
    condition: action or error
---
title: keywords - no route
id: 00000000-0000-4000-8000-000000000009
logsource: {product: aws, service: cloudtrail}
detection:
    keywords: [StopLogging]
    condition: keywords
---
title: sshd program condition routes on process.name
id: 00000000-0000-4000-8000-000000000010
logsource: {product: linux, service: sshd}
detection:
    selection: {system.auth.ssh.event: Failed}
    condition: selection
---
title: linux keywords - no route
id: 00000000-0000-4000-8000-000000000011
logsource: {product: linux}
detection:
    keywords: ['Accepted password']
    condition: keywords
---
title: null in a branch - no route on that field
id: 00000000-0000-4000-8000-000000000012
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: [DeleteBucket, null]}
    condition: selection
"""


def _rid(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> CompiledRuleSet:
    folder = tmp_path_factory.mktemp("rules")
    (folder / "mixed.yml").write_text(MIXED_RULES)
    ruleset = RuleCompiler().compile([folder])
    assert ruleset.unsupported == []
    return ruleset


def test_routes_come_from_the_detection_tree(mixed: CompiledRuleSet) -> None:
    routes = {rule.id: rule.routing for rule in mixed.detections()}
    assert routes == {
        _rid(1): RouteKey("event.action", frozenset({"stoplogging"})),
        _rid(2): RouteKey("event.action", frozenset({"deletetrail", "updatetrail", "puteventselectors"})),
        _rid(3): RouteKey("event.action", frozenset({"createaccesskey", "createuser"})),
        _rid(4): None,
        _rid(5): RouteKey("event.action", frozenset({"createaccesskey"})),
        _rid(6): RouteKey("event.provider", frozenset({"iam.amazonaws.com"})),
        _rid(7): RouteKey("aws.cloudtrail.user_identity.type", frozenset({"root"})),
        _rid(8): None,
        _rid(9): None,
        _rid(10): RouteKey("process.name", frozenset({"sshd"})),
        _rid(11): None,
        _rid(12): None,
    }


def _rule(number: int, route: RouteKey | None) -> CompiledRule:
    return CompiledRule(id=_rid(number), title="t", level=None, tags=(), datasets=("aws.cloudtrail",),
                        expression="true", path=None, kind="detection", routing=route)


def test_fields_only_routed_rules_read_are_lowered_inside_them(mixed: CompiledRuleSet) -> None:
    rules = mixed.detections("aws.cloudtrail")
    inline = routed_only_fields(rules, route_fields(rules))
    assert "aws.cloudtrail.user_identity.user_name" in inline  # read by rule 5 only, routed on CreateAccessKey
    assert "event.action" not in inline  # a route key: every event needs it
    assert "aws.cloudtrail.error_code" not in inline  # rule 8, unrouted, reads it for every event
    assert routed_only_fields(mixed.detections("system.auth"), ["process.name"]) == {"system.auth.ssh.event"}
    rule = next(rule for rule in rules if rule.id == _rid(5))
    lowered = inline_normalized(rule, inline)
    assert "lower(`aws`.`cloudtrail`.`user_identity`.`user_name`)" in lowered.expression
    assert "_lc__aws__cloudtrail__user_identity__user_name" in rule.expression
    assert "_lc__aws__cloudtrail__user_identity__user_name" not in lowered.expression
    assert "_lc__event__action" in lowered.expression  # the route key stays a shared column
    untouched = next(rule for rule in rules if rule.id == _rid(1))
    assert inline_normalized(untouched, inline) is untouched
    # With the JVM functions (routed `contains` read the fields themselves), a field unrouted rules read
    # too is still lowered inside the routed rules: their chunk is a projection of its own.
    assert routed_only_fields(rules, route_fields(rules), folded=True) == inline  # no field read by both here
    sshd = replace(_rule(1, RouteKey("process.name", frozenset({"sshd"}))),
                   normalized_fields=frozenset({"message", "process.name", "user.name"}))
    keywords = replace(_rule(2, None), normalized_fields=frozenset({"message"}))
    assert routed_only_fields([sshd, keywords], ["process.name"]) == {"user.name"}
    assert routed_only_fields([sshd, keywords], ["process.name"], folded=True) == {"message", "user.name"}


def test_route_prefilters_fold_case_with_the_jvm_functions(spark: Any) -> None:
    rules = [_rule(1, RouteKey("event.action", frozenset({"stoplogging", "deletetrail"})))]
    chunk = plan_chunks(rules, chunk_size=9)[0]
    plain, folded = routing.rule_prefilter(chunk), routing.rule_prefilter(chunk, functions=spark)
    assert "IN ('deletetrail', 'stoplogging')" in str(plain)
    assert "citysoc_in_lower(`event`.`action`, 'deletetrail', 'stoplogging')" in str(folded)
    frame = spark.createDataFrame([("StopLogging",), ("DELETETRAIL",), ("StopLoggingNow",), (None,)], "action string") \
        .selectExpr("struct(action) AS event", "lower(action) AS _lc__event__action")
    assert [row[0] for row in frame.select(folded).collect()] == [row[0] for row in frame.select(plain).collect()] \
        == [True, True, False, None]


def test_chunks_respect_the_predicate_budget_and_keep_unrouted_apart() -> None:
    rules = [_rule(i, RouteKey("event.action", frozenset({f"a{i}", f"b{i}", f"c{i}"}))) for i in range(10)]
    rules += [_rule(100 + i, None) for i in range(5)]
    rules.append(_rule(200, RouteKey("event.action", frozenset(f"x{i}" for i in range(12)))))
    chunks = plan_chunks(rules, chunk_size=7)
    assert [chunk.size for chunk in chunks] == [6, 6, 6, 6, 6, 12, 5]  # the 12-value rule gets its own chunk
    assert all(not chunk.unrouted for chunk in chunks[:-1]) and len(chunks[-1].unrouted) == 5
    assert all(chunk.routed for chunk in chunks[:-1]) and not chunks[-1].routed  # prefilter possible / not
    with pytest.raises(ValueError):
        plan_chunks(rules, chunk_size=0)


def _mixed_events() -> list[dict[str, Any]]:
    events = []
    actions = ["StopLogging", "stoplogging", "DeleteTrail", "UpdateTrail", "PutEventSelectors", "CreateAccessKey",
               "CreateUser", "CreateRole", "DeleteBucket", "DescribeTrails", "ConsoleLogin"]
    for index, action in enumerate(actions):
        for user, user_type in (("alice", "IAMUser"), ("bob", "Root"), (None, "AssumedRole")):
            for provider in ("cloudtrail.amazonaws.com", "iam.amazonaws.com"):
                events.append(cloudtrail(f"ct-{index}-{user}-{provider[:3]}", action, provider=provider, user=user,
                                         user_type=user_type, error_code="AccessDenied" if index % 4 == 0 else None))
    events.append(cloudtrail("ct-null-action", None, provider="s3.amazonaws.com"))  # type: ignore[arg-type]
    events += [ssh("s-failed", "Failed", ip="10.0.0.1"), ssh("s-accepted", "Accepted", ip="10.0.0.2")]
    other = ssh("s-other-program", "Failed", ip="10.0.0.3")
    other["process"]["name"] = "SSHD"  # routing keys are lower-cased like the predicates' values
    return [*events, other]


def _pairs(frame: Any) -> list[tuple[str, str]]:
    return sorted((row["_event_id"], row["_rule_id"]) for row in frame.select("_event_id", "_rule_id").collect())


@pytest.mark.slow
def test_routed_matches_equal_unrouted_on_a_mixed_workload(spark: Any, tmp_path: Path, mixed: CompiledRuleSet,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    write_lake(tmp_path / "events", _mixed_events())
    for dataset in ("aws.cloudtrail", "system.auth"):
        events = read_events(spark, tmp_path / "events", dataset)
        assert events is not None
        rules = mixed.detections(dataset)
        expected = _pairs(match_rules(events, rules, routed=False))
        assert expected  # the workload exercises the rules
        for chunk_size in (1, 3, 200):
            assert _pairs(match_rules(events, rules, chunk_size=chunk_size)) == expected, chunk_size
        monkeypatch.setattr(job, "FOLD_UNROUTED_MAX", 0)  # unrouted rules in a chunk of their own
        assert _pairs(match_rules(events, rules)) == expected
        monkeypatch.setattr(job, "FOLD_UNROUTED_MAX", 100)
        assert _pairs(match_rules(events, rules)) == expected
        monkeypatch.setattr(routing, "FLAT_CASE_MAX", 10_000)  # flat CASE instead of the binary search
        assert _pairs(match_rules(events, rules)) == expected
        monkeypatch.setattr(routing, "FLAT_CASE_MAX", 0)  # binary search down to single values
        assert _pairs(match_rules(events, rules)) == expected
        monkeypatch.undo()
    aws_events = read_events(spark, tmp_path / "events", "aws.cloudtrail")
    assert aws_events is not None
    aws_matches = match_rules(aws_events, mixed.detections("aws.cloudtrail"))
    # the four unrouted CloudTrail rules joined the routed chunk: one scan of the lake, not two
    assert aws_matches._jdf.queryExecution().executedPlan().toString().count("FileScan") == 1
    aws = _pairs(aws_matches)
    assert ("ct-0-alice-clo", _rid(1)) in aws and ("ct-1-alice-clo", _rid(1)) in aws  # case-insensitive route
    assert ("ct-0-alice-clo", _rid(4)) not in aws and ("ct-9-alice-clo", _rid(4)) in aws  # `not` is not routed
    assert ("ct-null-action", _rid(4)) in aws and ("ct-null-action", _rid(12)) in aws  # null action


@pytest.mark.slow
def test_a_chunk_of_many_rules_compiles_and_matches(spark: Any, tmp_path: Path) -> None:
    """450 routed rules (several values each) and 60 unrouted ones: JVM method-size limits hold."""
    documents = []
    for number in range(450):
        documents.append(
            f"title: r{number}\nid: {_rid(1000 + number)}\nlogsource: {{product: aws, service: cloudtrail}}\n"
            f"detection:\n    selection: {{eventName: [Action{number}, Other{number % 7}], "
            f"userIdentity.type|contains: am}}\n    condition: selection\n")
    for number in range(60):
        documents.append(
            f"title: u{number}\nid: {_rid(2000 + number)}\nlogsource: {{product: aws, service: cloudtrail}}\n"
            f"detection:\n    selection: {{userAgent|contains: agent{number}}}\n    condition: selection\n")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "many.yml").write_text("---\n".join(documents))
    ruleset = RuleCompiler().compile([tmp_path / "rules"])
    rules = ruleset.detections("aws.cloudtrail")
    assert len(rules) == 510 and sum(rule.routing is not None for rule in rules) == 450
    events = [cloudtrail(f"e{n}", f"Action{n}", user_type="IAMUser") for n in range(0, 450, 37)]
    events += [cloudtrail("o3", "Other3", user_type="IAMUser"), cloudtrail("none", "Nothing")]
    write_lake(tmp_path / "events", events)
    frame = read_events(spark, tmp_path / "events", "aws.cloudtrail")
    assert frame is not None
    routed = _pairs(match_rules(frame, rules))
    assert routed == _pairs(match_rules(frame, rules, routed=False))
    other3 = len(range(3, 450, 7))  # rules naming Other3
    assert ("o3", _rid(1003)) in routed and len([p for p in routed if p[0] == "o3"]) == other3
    assert len(routed) == len(range(0, 450, 37)) + other3


def test_a_few_unrouted_rules_join_the_roomiest_routed_chunk() -> None:
    rules = [_rule(i, RouteKey("event.action", frozenset({f"a{i}", f"b{i}", f"c{i}"}))) for i in range(5)]
    rules += [_rule(100 + i, None) for i in range(2)]
    chunks = plan_chunks(rules, chunk_size=9, fold_unrouted=2)
    assert [chunk.size for chunk in chunks] == [9, 8]  # 3 + 3 + 3 routed, then 3 + 3 routed + 2 unrouted
    assert [rule.id for rule in chunks[1].unrouted] == [_rid(100), _rid(101)] and not chunks[0].unrouted
    prefilter = routing.rule_prefilter(chunks[1])
    assert prefilter is not None and "(true)" in str(prefilter)  # their own expressions let their matches through
    # more unrouted rules than the bound, or no room left: a chunk of their own, without prefilter
    for apart in (plan_chunks(rules, chunk_size=9, fold_unrouted=1),
                  plan_chunks(rules[1:], chunk_size=6, fold_unrouted=2)):
        assert not apart[-1].routed and len(apart[-1].unrouted) == 2
        assert routing.rule_prefilter(apart[-1]) is None
    assert not plan_chunks(rules[5:], chunk_size=9, fold_unrouted=2)[0].routed  # nothing routed to join


def test_rules_without_routing_are_evaluated_everywhere() -> None:
    rules = [replace(_rule(1, RouteKey("event.action", frozenset({"a"})))), _rule(2, None)]
    chunks = plan_chunks(rules, chunk_size=200)
    assert [(list(chunk.routed), [r.id for r in chunk.unrouted]) for chunk in chunks] == [
        (["event.action"], []), ([], [_rid(2)])]
