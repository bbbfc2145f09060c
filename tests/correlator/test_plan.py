"""The engine's plan: routes from the Sigma tree, chunks, lowered columns, the literal index, JVM functions.

`plan_matching` is Spark-free: most tests here check its choices directly; the Spark tests check that
every plan gives the same matches as evaluating every rule on every event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from correlator.compiler import RuleCompiler
from correlator.engine.detection import read_events
from correlator.engine.jvm import register_functions
from correlator.engine.options import EngineOptions
from correlator.engine.plan import plan_chunks, plan_matching, route_fields, routed_only_fields
from correlator.errors import EngineError, RuleLocation
from correlator.model import CompiledRule, CompiledRuleSet, RouteKey
from correlator.sql import Condition, Lowered
from tests.correlator.builders import cloudtrail, compile_text, lake, matched, ssh, write_lake

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
    return compile_text(tmp_path_factory.mktemp("rules"), MIXED_RULES)


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
        _rid(10): RouteKey("process.name", frozenset({"sshd", "sshd-auth", "sshd-session"})),
        _rid(11): None,
        _rid(12): None,
    }


def _rule(number: int, route: RouteKey | None, lowered: tuple[str, ...] = ()) -> CompiledRule:
    """A rule that matches every event, reading the `lowered` fields' lower-cased values."""
    condition = Condition(("true", *(part for name in lowered for part in (" AND ", Lowered(name), " IS NOT NULL"))))
    return CompiledRule(id=_rid(number), title="t", level=None, tags=(), datasets=("aws.cloudtrail",),
                        condition=condition, location=RuleLocation(), kind="detection", routing=route)


def test_fields_only_routed_rules_read_are_lowered_inside_them(mixed: CompiledRuleSet) -> None:
    rules = mixed.detections("aws.cloudtrail")
    inline = routed_only_fields(rules, route_fields(rules))
    assert "aws.cloudtrail.user_identity.user_name" in inline  # read by rule 5 only, routed on CreateAccessKey
    assert "event.action" not in inline  # a route key: every event needs it
    assert "aws.cloudtrail.error_code" not in inline  # rule 8, unrouted, reads it for every event
    assert routed_only_fields(mixed.detections("system.auth"), ["process.name"]) == {"system.auth.ssh.event"}
    rule = next(rule for rule in rules if rule.id == _rid(5))
    assert "_lc__aws__cloudtrail__user_identity__user_name" in rule.expression  # the plain spelling
    plan = plan_matching(rules, EngineOptions())
    assert plan.inline == inline and "aws.cloudtrail.user_identity.user_name" not in plan.lowered_columns
    assert {"event.action", "aws.cloudtrail.error_code"} <= set(plan.lowered_columns)
    hits = plan.chunk_of(rule.id).hits
    assert "lower(`aws`.`cloudtrail`.`user_identity`.`user_name`)" in hits
    assert "_lc__aws__cloudtrail__user_identity__user_name" not in hits
    assert "`_lc__event__action`" in hits  # the route key stays a shared column
    # With the JVM functions (routed `contains` read the fields themselves), a field unrouted rules read
    # too is still lowered inside the routed rules: their chunk is a projection of its own.
    assert routed_only_fields(rules, route_fields(rules), functions=True) == inline  # no field read by both here
    sshd = _rule(1, RouteKey("process.name", frozenset({"sshd"})), ("message", "process.name", "user.name"))
    keywords = _rule(2, None, ("message",))
    assert routed_only_fields([sshd, keywords], ["process.name"]) == {"user.name"}
    assert routed_only_fields([sshd, keywords], ["process.name"], functions=True) == {"message", "user.name"}
    with_functions = plan_matching([sshd, keywords], EngineOptions(jvm_functions=True))
    assert with_functions.lowered_columns == ("message", "process.name")  # the keyword rule reads the column
    assert "lower(`message`)" in with_functions.chunk_of(sshd.id).hits


def test_route_prefilters_fold_case_with_the_jvm_functions() -> None:
    rules = [_rule(1, RouteKey("event.action", frozenset({"stoplogging", "deletetrail"})))]
    plain = plan_matching(rules, EngineOptions(jvm_functions=False)).chunks[0].prefilter
    folded = plan_matching(rules, EngineOptions(jvm_functions=True)).chunks[0].prefilter
    assert plain == "(`_lc__event__action` IN ('deletetrail', 'stoplogging'))"
    assert folded == "(citysoc_in_lower(`event`.`action`, 'deletetrail', 'stoplogging'))"


@pytest.mark.slow
def test_folded_and_plain_prefilters_agree(spark: Any) -> None:
    rules = [_rule(1, RouteKey("event.action", frozenset({"stoplogging", "deletetrail"})))]
    plain = plan_matching(rules, EngineOptions(jvm_functions=False)).chunks[0].prefilter
    folded = plan_matching(rules, EngineOptions(jvm_functions=True)).chunks[0].prefilter
    assert plain is not None and folded is not None
    register_functions(spark)
    frame = spark.createDataFrame([("StopLogging",), ("DELETETRAIL",), ("StopLoggingNow",), (None,)], "action string") \
        .selectExpr("struct(action) AS event", "lower(action) AS _lc__event__action")
    assert [row[0] for row in frame.select(F.expr(folded)).collect()] == \
        [row[0] for row in frame.select(F.expr(plain)).collect()] == [True, True, False, None]


def test_chunks_respect_the_predicate_budget_and_keep_unrouted_apart() -> None:
    rules = [_rule(i, RouteKey("event.action", frozenset({f"a{i}", f"b{i}", f"c{i}"}))) for i in range(10)]
    rules += [_rule(100 + i, None) for i in range(5)]
    rules.append(_rule(200, RouteKey("event.action", frozenset(f"x{i}" for i in range(12)))))
    chunks = plan_chunks(rules, chunk_size=7)
    assert [chunk.size for chunk in chunks] == [6, 6, 6, 6, 6, 12, 5]  # the 12-value rule gets its own chunk
    assert all(not chunk.unrouted for chunk in chunks[:-1]) and len(chunks[-1].unrouted) == 5
    assert all(chunk.routed for chunk in chunks[:-1]) and not chunks[-1].routed  # prefilter possible / not
    with pytest.raises(EngineError):
        plan_chunks(rules, chunk_size=0)
    with pytest.raises(EngineError, match="chunk_size"):
        EngineOptions(chunk_size=0)


def test_neighbouring_route_values_with_the_same_rules_share_one_branch() -> None:
    """A service that logs under several program names routes its rules on each of them; the projection's
    generated code holds such a rule once per distinct set of rules, not once per name (three copies of
    the sshd rules made the auth projection's tasks take about 1.7x the CPU)."""
    programs = frozenset({"sshd", "sshd-auth", "sshd-session"})
    rules = [_rule(1, RouteKey("process.name", programs)), _rule(2, RouteKey("process.name", programs)),
             _rule(3, RouteKey("process.name", frozenset({"cron", "crond"})))]
    for flat_max in (0, 1, 4, 100):
        (chunk,) = plan_matching(rules, EngineOptions(flat_case_max=flat_max)).chunks
        assert [chunk.hits.count(f"'{_rid(number)}'") for number in (1, 2, 3)] == [1, 1, 1]
        assert "IN ('sshd', 'sshd-auth', 'sshd-session')" in chunk.hits
    # a value with other rules splits the neighbours: one branch per distinct set of rules
    rules.append(_rule(4, RouteKey("process.name", frozenset({"sshd-auth"}))))
    (chunk,) = plan_matching(rules, EngineOptions(flat_case_max=100)).chunks
    assert [chunk.hits.count(f"'{_rid(number)}'") for number in (1, 3, 4)] == [3, 1, 1]
    assert "= 'sshd-auth'" in chunk.hits


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
    renamed = []
    for program in ("sshd-session", "sshd-auth"):  # OpenSSH 9.8+: one branch of the route dispatch for the three
        event = ssh(f"s-{program}", "Failed", ip="10.0.0.4")
        event["process"]["name"] = program
        renamed.append(event)
    return [*events, other, *renamed]


def _pairs(frame: Any) -> list[tuple[str, str]]:
    return sorted((row["_event_id"], row["_rule_id"]) for row in frame.select("_event_id", "_rule_id").collect())


@pytest.mark.slow
def test_routed_matches_equal_unrouted_on_a_mixed_workload(spark: Any, tmp_path: Path,
                                                           mixed: CompiledRuleSet) -> None:
    write_lake(tmp_path / "events", _mixed_events())
    for dataset in ("aws.cloudtrail", "system.auth"):
        events = read_events(spark, lake(tmp_path), dataset)
        assert events is not None
        rules = mixed.detections(dataset)
        expected = _pairs(matched(events, rules, routing=False))
        assert expected  # the workload exercises the rules
        for chunk_size in (1, 3, 200):
            assert _pairs(matched(events, rules, chunk_size=chunk_size)) == expected, chunk_size
        assert _pairs(matched(events, rules, fold_unrouted_max=0)) == expected  # unrouted rules apart
        assert _pairs(matched(events, rules, fold_unrouted_max=100)) == expected
        assert _pairs(matched(events, rules, flat_case_max=10_000)) == expected  # flat CASE, no binary search
        assert _pairs(matched(events, rules, flat_case_max=0)) == expected  # binary search down to single values
    aws_events = read_events(spark, lake(tmp_path), "aws.cloudtrail")
    assert aws_events is not None
    aws_matches = matched(aws_events, mixed.detections("aws.cloudtrail"))
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
    frame = read_events(spark, lake(tmp_path), "aws.cloudtrail")
    assert frame is not None
    routed = _pairs(matched(frame, rules))
    assert routed == _pairs(matched(frame, rules, routing=False))
    other3 = len(range(3, 450, 7))  # rules naming Other3
    assert ("o3", _rid(1003)) in routed and len([p for p in routed if p[0] == "o3"]) == other3
    assert len(routed) == len(range(0, 450, 37)) + other3


def test_a_few_unrouted_rules_join_the_roomiest_routed_chunk() -> None:
    rules = [_rule(i, RouteKey("event.action", frozenset({f"a{i}", f"b{i}", f"c{i}"}))) for i in range(5)]
    rules += [_rule(100 + i, None) for i in range(2)]
    chunks = plan_chunks(rules, chunk_size=9, fold_unrouted=2)
    assert [chunk.size for chunk in chunks] == [9, 8]  # 3 + 3 + 3 routed, then 3 + 3 routed + 2 unrouted
    assert [rule.id for rule in chunks[1].unrouted] == [_rid(100), _rid(101)] and not chunks[0].unrouted
    plan = plan_matching(rules, EngineOptions(chunk_size=9, fold_unrouted_max=2))
    prefilter = plan.chunk_of(_rid(100)).prefilter
    assert prefilter is not None and prefilter.endswith("(true) OR (true)")  # their matches pass it too
    # more unrouted rules than the bound, or no room left: a chunk of their own, without prefilter
    for apart in (plan_chunks(rules, chunk_size=9, fold_unrouted=1),
                  plan_chunks(rules[1:], chunk_size=6, fold_unrouted=2)):
        assert not apart[-1].routed and len(apart[-1].unrouted) == 2
    assert plan_matching(rules, EngineOptions(chunk_size=9, fold_unrouted_max=1)).chunk_of(_rid(100)).prefilter \
        is None
    assert not plan_chunks(rules[5:], chunk_size=9, fold_unrouted=2)[0].routed  # nothing routed to join


def test_rules_without_routing_are_evaluated_everywhere() -> None:
    rules = [_rule(1, RouteKey("event.action", frozenset({"a"}))), _rule(2, None)]
    chunks = plan_chunks(rules, chunk_size=200)
    assert [(list(chunk.routed), [r.id for r in chunk.unrouted]) for chunk in chunks] == [
        (["event.action"], []), ([], [_rid(2)])]


KEYWORD_RULES = """
title: keywords
id: 00000000-0000-4000-8000-000000000101
logsource: {product: linux}
detection:
    keywords: ['corrupted MAC', 'stack smashing', 'segfault at']
    condition: keywords
---
title: another keyword
id: 00000000-0000-4000-8000-000000000102
logsource: {product: linux}
detection:
    keywords: ['segfault at']
    condition: keywords
---
title: only a negation
id: 00000000-0000-4000-8000-000000000103
logsource: {product: linux}
detection:
    keywords: ['harmless']
    condition: not keywords
---
title: routed sshd rule with many contains
id: 00000000-0000-4000-8000-000000000104
logsource: {product: linux, service: sshd}
detection:
    keywords: ['error in libcrypto', 'fatal', 'bad packet', 'connection reset']
    condition: keywords
"""


@pytest.fixture(scope="module")
def keyword_rules(tmp_path_factory: pytest.TempPathFactory) -> list[CompiledRule]:
    return compile_text(tmp_path_factory.mktemp("keywords"), KEYWORD_RULES).detections("system.auth")


def test_the_reference_plan_evaluates_every_rule_plainly(mixed: CompiledRuleSet) -> None:
    rules = mixed.detections("aws.cloudtrail")
    plan = plan_matching(rules, EngineOptions.reference())
    assert not plan.index.literals and not plan.inline and not plan.functions
    [chunk] = plan.chunks
    assert chunk.prefilter is None and not chunk.routed and not chunk.gated
    assert all(f"CASE WHEN ({rule.expression}) THEN '{rule.id}' END" in chunk.hits for rule in rules)


def test_keyword_rules_share_one_literal_index_and_a_gate(keyword_rules: list[CompiledRule]) -> None:
    plan = plan_matching(keyword_rules, EngineOptions(jvm_functions=False))
    assert plan.index.literals == {"message": ("corrupted mac", "harmless", "segfault at", "stack smashing")}
    gated = plan.chunk_of(_rid(101))
    assert gated.gated and gated is plan.chunk_of(_rid(102)) and gated.rule_ids == (_rid(101), _rid(102))
    assert gated.prefilter == ("(contains(`_lc__message`, 'corrupted mac') OR contains(`_lc__message`, 'segfault at')"
                               " OR contains(`_lc__message`, 'stack smashing'))")
    assert "contains(" not in gated.hits and "`_kw__message`[0]" in gated.hits  # answered by the bitmap
    negation = plan.chunk_of(_rid(103))
    assert not negation.gated and "`_kw__message`" in negation.hits  # not gated, still reads the bitmap
    assert plan.added_columns == ["_lc__message", "_lc__process__name", "_kw__message"]
    assert plan.bitmap_sql["_kw__message"].startswith("CASE WHEN `_lc__message` IS NOT NULL THEN array(")
    routed = plan.chunk_of(_rid(104))
    assert routed.routed and routed.prefilter == "(`_lc__process__name` IN ('sshd', 'sshd-auth', 'sshd-session'))"
    assert "(contains(`_lc__message`, 'error in libcrypto') OR contains(`_lc__message`, 'fatal')" in routed.hits


def test_jvm_functions_read_the_fields_themselves(keyword_rules: list[CompiledRule]) -> None:
    plan = plan_matching(keyword_rules, EngineOptions(jvm_functions=True))
    assert plan.functions
    assert plan.chunk_of(_rid(101)).prefilter == \
        "(citysoc_contains_any(`message`, 'corrupted mac', 'segfault at', 'stack smashing'))"
    assert plan.bitmap_sql["_kw__message"].startswith("citysoc_multi_contains(`message`, 'corrupted mac', ")
    routed = plan.chunk_of(_rid(104))
    assert routed.prefilter == "(citysoc_in_lower(`process`.`name`, 'sshd', 'sshd-auth', 'sshd-session'))"
    # one pass for the OR of four substrings; the routed rule lowers nothing else itself
    assert "citysoc_contains_any(`message`, 'error in libcrypto', 'fatal', 'bad packet', 'connection reset')" \
        in routed.hits and "contains(`_lc__message`" not in routed.hits


def test_without_the_literal_index_nothing_is_gated(keyword_rules: list[CompiledRule]) -> None:
    plan = plan_matching(keyword_rules, EngineOptions(literal_index=False))
    assert not plan.index.literals and not any(chunk.gated for chunk in plan.chunks)
    assert plan.added_columns == ["_lc__message", "_lc__process__name"]
    with pytest.raises(EngineError, match="at least one rule"):
        plan_matching([], EngineOptions())
