"""Sigma semantics through the real engine: every modifier, case, wildcards, null/missing, conditions.

Each case is one rule (detection only) and the events it must and must not match. All cases compile into
one rule set and run in one Spark pass (`correlator.engine.matching`); each case then checks the ids of its own events.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import functions as F

from citysoc.schema import nest, spark_schema, to_row
from correlator.compiler import RuleCompiler
from correlator.model import CompiledRuleSet
from correlator.sql import lowered_column, lowered_sql
from tests.correlator.builders import matched as engine_matches

pytestmark = pytest.mark.slow

LINUX = "{product: linux, service: auth}"
T12 = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
AWS = "{product: aws, service: cloudtrail}"


@dataclass(frozen=True)
class Case:
    name: str
    detection: str  # YAML of the detection block, indented by 4
    events: Mapping[str, Mapping[str, Any]]  # local id -> flat ECS fields
    expected: frozenset[str]  # local ids that must match
    logsource: str = LINUX


def case(name: str, detection: str, events: Mapping[str, Mapping[str, Any]], expected: set[str],
         logsource: str = LINUX) -> Case:
    return Case(name, detection, events, frozenset(expected), logsource)


def b64(text: str, encoding: str = "utf-8") -> str:
    return base64.b64encode(text.encode(encoding)).decode()


def _user(name: Any) -> dict[str, Any]:
    return {"user.name": name}


def _msg(text: Any) -> dict[str, Any]:
    return {"message": text}


CASES: list[Case] = [
    case("eq_case_insensitive", "sel: {user.name: Alice}\n    condition: sel",
         {"a": _user("alice"), "b": _user("ALICE"), "c": _user("alicex"), "d": _user(None)}, {"a", "b"}),
    case("eq_non_ascii_case", "sel: {user.name: ÄRZTIN-Ωμέγα}\n    condition: sel",
         {"a": _user("ärztin-ωμέγα"), "b": _user("Ärztin-ΩΜΈΓΑ"), "c": _user("arztin-ωμεγα")}, {"a", "b"}),
    case("eq_list_in", "sel: {user.name: [Root, admin, Backup]}\n    condition: sel",
         {"a": _user("root"), "b": _user("BACKUP"), "c": _user("rooty"), "d": _user(None)}, {"a", "b"}),
    case("contains", "sel: {message|contains: 'Failed Password'}\n    condition: sel",
         {"a": _msg("x failed password for"), "b": _msg("FAILED PASSWORD"), "c": _msg("failed pass")}, {"a", "b"}),
    case("startswith_endswith", "s: {message|startswith: Begin}\n    e: {message|endswith: END}\n"
         "    condition: s and e",
         {"a": _msg("begin..end"), "b": _msg("BEGIN x END"), "c": _msg("x begin end"), "d": _msg("begin end x")},
         {"a", "b"}),
    case("contains_all", "sel: {message|contains|all: [foo, bar]}\n    condition: sel",
         {"a": _msg("foo bar"), "b": _msg("BAR then FOO"), "c": _msg("foo only")}, {"a", "b"}),
    case("wildcards", "sel: {user.name: 'a*c?e'}\n    condition: sel",
         {"a": _user("abcde"), "b": _user("AxxCyE"), "c": _user("ace"), "d": _user("a\nbcde"), "e": _user("abcdef")},
         {"a", "b", "d"}),
    case("escaped_wildcards", "sel: {user.name: 'a\\*b\\?'}\n    condition: sel",
         {"a": _user("a*b?"), "b": _user("axb?"), "c": _user("a*bx")}, {"a"}),
    case("like_specials_are_literal", "sel: {user.name: '?_%*'}\n    condition: sel",
         {"a": _user("1_%x"), "b": _user("1_%"), "c": _user("12%x"), "d": _user("1_x")}, {"a", "b"}),
    case("star_matches_any_present_value", "sel: {user.name: '*'}\n    condition: sel",
         {"a": _user("x"), "b": _user(""), "c": _user(None)}, {"a", "b"}),
    case("empty_string", "sel: {user.name: ''}\n    condition: sel",
         {"a": _user(""), "b": _user(None), "c": _user("x")}, {"a"}),
    case("re_case_sensitive", "sel: {message|re: 'Failed \\w+ for'}\n    condition: sel",
         {"a": _msg("x Failed password for y"), "b": _msg("failed password for")}, {"a"}),
    case("re_i", "sel: {message|re|i: 'failed \\w+ FOR|ÄRZTIN'}\n    condition: sel",
         {"a": _msg("Failed password for"), "b": _msg("FAILED PASSWORD FOR"), "c": _msg("failed for"),
          "d": _msg("die ärztin")}, {"a", "b", "d"}),
    case("re_m", "sel: {message|re|m: '^bar$'}\n    condition: sel",
         {"a": _msg("foo\nbar\nbaz"), "b": _msg("foobar")}, {"a"}),
    case("re_without_m", "sel: {message|re: '^bar$'}\n    condition: sel",
         {"a": _msg("foo\nbar\nbaz"), "b": _msg("bar")}, {"b"}),
    case("re_s", "sel: {message|re|s: 'foo.bar'}\n    condition: sel",
         {"a": _msg("foo\nbar"), "b": _msg("fooxbar")}, {"a", "b"}),
    case("re_without_s", "sel: {message|re: 'foo.bar'}\n    condition: sel",
         {"a": _msg("foo\nbar"), "b": _msg("fooxbar")}, {"b"}),
    case("re_quote_and_backslash", "sel: {message|re: \"it's \\\\d+\\\\\\\\x\"}\n    condition: sel",
         {"a": _msg("it's 42\\x"), "b": _msg("it's x\\x")}, {"a"}),
    case("cidr_v4_v6", "sel: {source.ip|cidr: [10.0.0.0/8, '2001:db8::/32', 'fe80::/10']}\n    condition: sel",
         {"a": {"source.ip": "10.1.2.3"}, "b": {"source.ip": "11.0.0.1"}, "c": {"source.ip": "2001:db8:0:1::5"},
          "d": {"source.ip": "2001:DB8::1"}, "e": {"source.ip": "2001:db9::1"}, "f": {"source.ip": "::1"},
          "g": {"source.ip": "fe80::1%eth0"}, "h": {"source.ip": "febf:ffff::1"}, "i": {"source.ip": "fec0::1"},
          "j": {"source.ip": "garbage"}, "k": {"source.ip": "10.0.0.999"}, "l": {"source.ip": None},
          "m": {"source.ip": "2001:db8::1::2"}, "n": {"source.ip": "2001:db8:0:0:0:0:0:0:1"}},
         {"a", "c", "d", "g", "h"}),
    case("not_cidr_includes_missing", "sel: {source.ip|cidr: 192.168.0.0/16}\n    condition: not sel",
         {"a": {"source.ip": "192.168.1.1"}, "b": {"source.ip": "8.8.8.8"}, "c": {"source.ip": None},
          "d": {"source.ip": "::1"}}, {"b", "c", "d"}),
    case("base64", "sel: {message|base64: 'secret'}\n    condition: sel",
         {"a": _msg(b64("secret")), "b": _msg("x " + b64("secret")), "c": _msg("secret")}, {"a"}),
    case("base64offset_contains", "sel: {message|base64offset|contains: 'secret'}\n    condition: sel",
         {"a": _msg("x" + b64("secret") + "y"), "b": _msg(b64("Xsecret")), "c": _msg(b64("XYsecretZ")),
          "d": _msg(b64("other"))}, {"a", "b", "c"}),
    case("utf16le_base64", "sel: {message|utf16le|base64offset|contains: 'ping'}\n    condition: sel",
         {"a": _msg(b64("ping", "utf-16-le")), "b": _msg(b64("xping", "utf-16-le")), "c": _msg(b64("ping"))},
         {"a", "b"}),
    case("utf16be_base64", "sel: {message|utf16be|base64|contains: 'ping'}\n    condition: sel",
         {"a": _msg(b64("ping", "utf-16-be")), "b": _msg(b64("ping", "utf-16-le"))}, {"a"}),
    case("utf16_bom", "sel: {message|utf16|contains: 'ab'}\n    condition: sel",
         {"a": _msg("\ufeffa\x00b\x00"), "b": _msg("a\x00b\x00")}, {"a"}),
    case("hour_and_year", "sel: {'@timestamp|hour': 12, '@timestamp|year': 2026}\n    condition: sel",
         {"a": {"@timestamp": T12}, "b": {"@timestamp": T12 + timedelta(hours=1)}, "c": {}}, {"a"}),
    case("wide_plain", "sel: {message|wide|contains: 'ab'}\n    condition: sel",
         {"a": _msg("xa\x00b\x00y"), "b": _msg("ab")}, {"a"}),
    case("windash", "sel: {message|windash|contains: ' -enc '}\n    condition: sel",
         {"a": _msg("ps /enc x"), "b": _msg("ps \u2013enc x"), "c": _msg("ps -ENC x"), "d": _msg("ps \u2015enc x"),
          "e": _msg("ps +enc x")}, {"a", "b", "c", "d"}),
    case("exists_true", "sel: {source.port|exists: true}\n    condition: sel",
         {"a": {"source.port": 22}, "b": {"source.port": None}}, {"a"}),
    case("exists_false", "sel: {user.id|exists: false}\n    condition: sel",
         {"a": {"user.id": "x"}, "b": {"user.id": None}}, {"b"}),
    case("cased", "sel: {user.name|cased: Alice}\n    condition: sel",
         {"a": _user("Alice"), "b": _user("alice"), "c": _user(None)}, {"a"}),
    case("cased_contains", "sel: {message|cased|contains: 'Foo'}\n    condition: sel",
         {"a": _msg("xFooy"), "b": _msg("xfooy")}, {"a"}),
    case("gte_long", "sel: {source.port|gte: 1024}\n    condition: sel",
         {"a": {"source.port": 22}, "b": {"source.port": 1024}, "c": {"source.port": 65535},
          "d": {"source.port": None}}, {"b", "c"}),
    case("lt_on_string_is_numeric", "sel: {user.id|lt: 1000}\n    condition: sel",
         {"a": {"user.id": "999"}, "b": {"user.id": "1000"}, "c": {"user.id": "abc"}, "d": {"user.id": "20"},
          "e": {"user.id": None}}, {"a", "d"}),
    case("not_gt_includes_non_numbers", "sel: {user.id|gt: 5}\n    condition: not sel",
         {"a": {"user.id": "6"}, "b": {"user.id": "abc"}, "c": {"user.id": None}, "d": {"user.id": "5"}},
         {"b", "c", "d"}),
    case("number_on_string_field", "sel: {user.id: 42}\n    condition: sel",
         {"a": {"user.id": "42"}, "b": {"user.id": "420"}}, {"a"}),
    case("number_on_long_field", "sel: {source.port: 22}\n    condition: sel",
         {"a": {"source.port": 22}, "b": {"source.port": 2222}}, {"a"}),
    case("fieldref", "sel: {user.name|fieldref: user.id}\n    condition: sel",
         {"a": {"user.name": "bob", "user.id": "BOB"}, "b": {"user.name": "bob", "user.id": "carol"},
          "c": {"user.name": "bob", "user.id": None}}, {"a"}),
    case("null_is_missing", "sel: {user.name: null}\n    condition: sel",
         {"a": _user(None), "b": _user("x"), "c": _user("")}, {"a"}),
    case("missing_field_and_not", "sel: {user.name: alice}\n    condition: not sel",
         {"a": _user(None), "b": _user("ALICE"), "c": _user("bob")}, {"a", "c"}),
    case("keywords", "keywords: ['Corrupted MAC', 'foo*bar']\n    condition: keywords",
         {"a": _msg("x corrupted mac y"), "b": _msg("a FOO x BAR b"), "c": _msg("nothing"), "d": _msg(None)},
         {"a", "b"}),
    case("not_keywords", "keywords: ['error']\n    condition: not keywords",
         {"a": _msg("an ERROR"), "b": _msg("fine"), "c": _msg(None)}, {"b", "c"}),
    case("keywords_all", "keywords:\n        '|all': [alpha, beta]\n    condition: keywords",
         {"a": _msg("beta alpha"), "b": _msg("alpha")}, {"a"}),
    case("one_of_pattern", "selection_a: {user.name: a}\n    selection_b: {user.name: b}\n    other: {user.id: x}\n"
         "    condition: 1 of selection_*",
         {"a": _user("a"), "b": _user("B"), "c": {"user.name": "c", "user.id": "x"}}, {"a", "b"}),
    case("all_of_pattern", "selection_a: {user.name|startswith: a}\n    selection_b: {user.name|endswith: z}\n"
         "    condition: all of selection_*",
         {"a": _user("abcz"), "b": _user("abc"), "c": _user("xyz")}, {"a"}),
    case("all_of_them", "s1: {user.name: a}\n    s2: {user.id: '1'}\n    condition: all of them",
         {"a": {"user.name": "a", "user.id": "1"}, "b": {"user.name": "a", "user.id": "2"}}, {"a"}),
    case("nested_parentheses_not",
         "sel_a: {user.name: a}\n    sel_b: {user.name: b}\n    f1: {user.id: x}\n    f2: {message|contains: y}\n"
         "    condition: (sel_a or sel_b) and not (f1 and f2)",
         {"a": {"user.name": "a"}, "b": {"user.name": "b", "user.id": "x", "message": "yy"},
          "c": {"user.name": "b", "user.id": "x", "message": None}, "d": {"user.name": "c"}}, {"a", "c"}),
    case("double_not", "sel: {user.name: a}\n    condition: not (not sel)",
         {"a": _user("A"), "b": _user(None), "c": _user("b")}, {"a"}),
    case("list_field_any_element", "sel: {related.user: ROOT}\n    condition: sel",
         {"a": {"related.user": ["bob", "root"]}, "b": {"related.user": ["bob"]}, "c": {"related.user": None}},
         {"a"}),
    case("list_field_contains_not", "sel: {related.user|contains: oo}\n    condition: not sel",
         {"a": {"related.user": ["bob", "ROOT"]}, "b": {"related.user": ["bob"]}, "c": {"related.user": None}},
         {"b", "c"}),
    case("json_subfield_case_insensitive", "sel: {eventName: CreateUser, requestParameters.userName: Bob}\n"
         "    condition: sel",
         {"a": {"event.action": "CreateUser", "aws.cloudtrail.request_parameters": json.dumps({"userName": "BOB"})},
          "b": {"event.action": "createuser", "aws.cloudtrail.request_parameters": json.dumps({"userName": "bob"})},
          "c": {"event.action": "CreateUser", "aws.cloudtrail.request_parameters": json.dumps({"userName": "bo"})},
          "d": {"event.action": "CreateUser", "aws.cloudtrail.request_parameters": None}}, {"a", "b"}, AWS),
    case("json_bool_and_number", "sel: {requestParameters.enabled: false, requestParameters.count: 3}\n"
         "    condition: sel",
         {"a": {"aws.cloudtrail.request_parameters": json.dumps({"enabled": False, "count": 3})},
          "b": {"aws.cloudtrail.request_parameters": json.dumps({"enabled": True, "count": 3})}}, {"a"}, AWS),
    case("cloudtrail_keyword_raw_record", "keywords: ['AKIAEXAMPLE']\n    condition: keywords",
         {"a": {"event.original": '{"accessKeyId": "akiaexample"}'}, "b": {"event.original": "{}"}}, {"a"}, AWS),
    case("expand_configured", "sel: {user.name|expand: '%admins%'}\n    condition: sel",
         {"a": _user("ROOT"), "b": _user("administrator"), "c": _user("bob")}, {"a", "b"}),
]

PLACEHOLDERS = {"admins": ["root", "Administrator"]}


def _rule_yaml(index: int, item: Case) -> str:
    return (f"title: {item.name}\nid: 00000000-0000-4000-8000-{index:012d}\nlogsource: {item.logsource}\n"
            f"detection:\n    {item.detection}\nlevel: low\n")


@pytest.fixture(scope="module")
def outcome(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[CompiledRuleSet, dict[str, set[str]]]:
    """Compile every case, run them all in one pass, return (rule set, case name -> matched local ids)."""
    directory = tmp_path_factory.mktemp("semantics")
    for index, item in enumerate(CASES):
        (directory / f"{item.name}.yml").write_text(_rule_yaml(index, item), encoding="utf-8")
    ruleset = RuleCompiler(spark, placeholders=PLACEHOLDERS).compile([directory])
    rows = []
    for item in CASES:
        for local_id, fields in item.events.items():
            doc = nest({"@timestamp": None, **fields, "event.id": f"{item.name}:{local_id}"})
            rows.append(to_row(doc))
    events = spark.createDataFrame(rows, spark_schema())
    matched: dict[str, set[str]] = {item.name: set() for item in CASES}
    names = {rule.id: rule.title for rule in ruleset.rules}
    for row in engine_matches(events, ruleset.rules).select("event.id", "_rule_id").collect():
        name = names[row["_rule_id"]]
        case_name, local_id = row["id"].split(":", 1)
        if case_name == name:
            matched[name].add(local_id)
    return ruleset, matched


@pytest.mark.parametrize("item", CASES, ids=[c.name for c in CASES])
def test_sigma_semantics(outcome: tuple[CompiledRuleSet, dict[str, set[str]]], item: Case) -> None:
    ruleset, matched = outcome
    problems = [u.reason for u in ruleset.unsupported if u.title == item.name]
    assert problems == [], problems
    assert matched[item.name] == set(item.expected)


def test_strings_compare_against_lowered_columns(outcome: tuple[CompiledRuleSet, dict[str, set[str]]]) -> None:
    ruleset, _ = outcome
    rules = {rule.title: rule for rule in ruleset.rules}
    eq = rules["eq_case_insensitive"]
    assert eq.expression == "`_lc__user__name` = 'alice'" and eq.lowered_fields == {"user.name"}
    assert "IN ('root', 'admin', 'backup')" in rules["eq_list_in"].expression
    assert rules["cased"].expression == "`user`.`name` = 'Alice'" and not rules["cased"].lowered_fields
    assert "lower(" not in rules["contains"].expression
    json_rule = rules["json_subfield_case_insensitive"]
    assert json_rule.lowered_fields == {"event.action", "aws.cloudtrail.request_parameters.userName"}
    assert "get_json_object" not in json_rule.expression  # extracted once per row by the lowered column
    assert "ip_cidr_contains" not in rules["cidr_v4_v6"].expression


def test_lowered_columns_are_lower_case_copies(spark: Any) -> None:
    doc = to_row(nest({"@timestamp": None, "event.id": "1", "user.name": "ÄLICE",
                       "aws.cloudtrail.request_parameters": json.dumps({"userName": "BoB"})}))
    events = spark.createDataFrame([doc], spark_schema())
    fields = ["user.name", "aws.cloudtrail.request_parameters.userName"]
    row = events.withColumns({lowered_column(name): F.expr(lowered_sql(name, column=False)) for name in fields}).first()
    assert row["_lc__user__name"] == "älice"
    assert row["_lc__aws__cloudtrail__request_parameters__userName"] == "bob"


def test_unconfigured_placeholder_is_unsupported_with_reason(spark: Any, tmp_path: Path) -> None:
    item = next(c for c in CASES if c.name == "expand_configured")
    (tmp_path / "r.yml").write_text(_rule_yaml(0, item))
    ruleset = RuleCompiler(spark).compile([tmp_path])
    assert ruleset.rules == []
    [problem] = ruleset.unsupported
    assert "placeholder %admins% has no configured values" in problem.reason
