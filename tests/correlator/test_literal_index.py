"""The literal index and prefilters: results identical to the plain expressions, on both paths.

Pure parts (regex literals, LIKE guards, requirements, the rewrite) are checked without Spark; the
equivalence tests run every rule with the index (Java UDF and built-in fallback) and without it on a
workload made of the rules' own literals, their look-alikes (a literal without the rest of a LIKE
pattern, one character changed, upper-cased, split by a line break) and real sshd lines.
"""

from __future__ import annotations

import random
import zipfile
from pathlib import Path
from typing import Any

import pytest
from pyspark.errors import AnalysisException, IllegalArgumentException
from pyspark.sql import functions as F
from sigma.types import SpecialChars
from structlog.testing import capture_logs

from citysoc.schema import nest, spark_schema, to_row
from correlator.compiler import RuleCompiler
from correlator.compiler.backend import string_match
from correlator.compiler.regex_literals import required_literal
from correlator.engine import jvm
from correlator.engine.events import prepare_events
from correlator.engine.jvm import register_functions
from correlator.engine.literal_index import LiteralIndex
from correlator.model import CompiledRule, CompiledRuleSet
from correlator.sql import (
    WORD_BITS,
    Condition,
    Contains,
    Spelling,
    any_contains_sql,
    builtin_bitmap,
    contains_sql,
    literal_column,
    sql_string,
)
from tests.conftest import require
from tests.correlator.builders import T0, compile_text, matched

STAR = SpecialChars.WILDCARD_MULTI
ONE = SpecialChars.WILDCARD_SINGLE


@pytest.mark.parametrize(("regex", "literal"), [
    (".+:assumed-role/aws:.+", ":assumed-role/aws:"),
    ("^/usr/bin/(curl|wget) -o /tmp/x", " -o /tmp/x"),
    ("abcd?ef", "abc"),  # `d?` is optional: the run stops before it
    ("xy+zzz", "zzz"),  # `y+` needs one y: `xy` and `zzz` are both required
    ("a\\.b\\.c[0-9]+\\.d", "a.b.c"),
    ("\\d+ failed logins? from", " failed login"),
    ("foo|barbaz", None),  # alternatives at the top level
    ("(?i)password", None),  # inline flags
    ("\\x41BCDEF", None),  # escapes with numbers are not modelled
    ("\\Qa.b\\E", None),
    ("ab", None),  # shorter than 3
    ("[abc]{3}", None),
    ("caf\u00e9 latte", None),  # non-ASCII: gives up
    ("x{2,3}yyy", "yyy"),
    ("(?:ab)+cde", "cde"),
])
def test_required_literal_of_a_regex(regex: str, literal: str | None) -> None:
    assert required_literal(regex) == literal


def test_like_is_guarded_by_its_longest_segment() -> None:
    sql, literals = string_match("`c`", ["cat /dev/null >", STAR, "sh_history"], contains=True)
    assert literals == ["cat /dev/null >"]
    assert sql == "(contains(`c`, 'cat /dev/null >') AND `c` LIKE '%cat /dev/null >%sh\\\\_history%')"
    sql, literals = string_match("`c`", ["a", STAR, "c", ONE, "e"])  # no segment long enough: plain LIKE
    assert literals == [] and sql == "`c` LIKE 'a%c_e'"
    assert string_match("`c`", ["x"], contains=True) == ("contains(`c`, 'x')", ["x"])
    assert string_match("`c`", ["x", STAR]) == ("startswith(`c`, 'x')", [])


KEYWORD_RULES = """
title: plain keywords
id: 00000000-0000-4000-8000-000000000101
logsource: {product: linux}
detection:
    keywords: ['Corrupted MAC', 'stack smashing', "it's \\\\back"]
    condition: keywords
---
title: keyword pattern and a not
id: 00000000-0000-4000-8000-000000000102
logsource: {product: linux}
detection:
    keywords: ['cat /dev/null >*sh_history', 'rm *sh_history']
    filter: ['harmless']
    condition: keywords and not filter
---
title: all of two keywords
id: 00000000-0000-4000-8000-000000000103
logsource: {product: linux}
detection:
    keywords:
        '|all': ['new user', 'uid=0,']
    condition: keywords
---
title: only a negation (not gated)
id: 00000000-0000-4000-8000-000000000104
logsource: {product: linux}
detection:
    keywords: ['session opened']
    condition: not keywords
---
title: regex keyword and a field contains
id: 00000000-0000-4000-8000-000000000105
logsource: {product: linux}
detection:
    rx:
        '|re': 'Failed \\w+ for invalid user'
    sel: {user.name|contains: adm}
    condition: rx or sel
---
title: cased contains stays on the raw column
id: 00000000-0000-4000-8000-000000000106
logsource: {product: linux}
detection:
    sel: {message|cased|contains: 'Accepted publickey'}
    condition: sel
---
title: non-ASCII keyword
id: 00000000-0000-4000-8000-000000000107
logsource: {product: linux}
detection:
    keywords: ['ÄRZTIN login', 'Ωμέγα']
    condition: keywords
---
title: routed OR of keywords (one pass)
id: 00000000-0000-4000-8000-000000000108
logsource: {product: linux, service: sshd}
detection:
    keywords: ['Corrupted MAC on input', 'error in libcrypto', 'ÄRZTIN', 'bad*string', "it's \\\\back", 'fatal']
    condition: keywords
---
title: routed OR of field contains, one list long enough
id: 00000000-0000-4000-8000-000000000109
logsource: {product: linux, service: sshd}
detection:
    long: {user.name|contains: ['adm', 'root', 'oper', 'svc']}
    short: {message|contains: ['session', 'publickey', 'disconnect']}
    condition: long and short
"""


@pytest.fixture(scope="module")
def keyword_rules(tmp_path_factory: pytest.TempPathFactory) -> CompiledRuleSet:
    return compile_text(tmp_path_factory.mktemp("keyword-rules"), KEYWORD_RULES)


def _by_title(ruleset: CompiledRuleSet) -> dict[str, CompiledRule]:
    return {rule.title: rule for rule in ruleset.detections("system.auth")}


def test_requirements_come_from_the_rule_tree(keyword_rules: CompiledRuleSet) -> None:
    rules = _by_title(keyword_rules)
    m = "message"
    assert rules["plain keywords"].required_literals == {(m, "corrupted mac"), (m, "stack smashing"),
                                                         (m, "it's \\back")}
    assert rules["keyword pattern and a not"].required_literals == {(m, "cat /dev/null >"), (m, "sh_history")}
    assert rules["all of two keywords"].required_literals == {(m, "new user")}  # the longer of the two
    assert rules["only a negation (not gated)"].required_literals is None
    assert rules["regex keyword and a field contains"].required_literals is None  # regex: no indexed literal
    assert rules["cased contains stays on the raw column"].required_literals is None
    assert rules["non-ASCII keyword"].required_literals == {(m, "ärztin login"), (m, "ωμέγα")}


def test_an_or_of_contains_on_one_field_is_one_group(keyword_rules: CompiledRuleSet) -> None:
    rules = _by_title(keyword_rules)
    keywords = rules["routed OR of keywords (one pass)"]
    literals = ("corrupted mac on input", "error in libcrypto", "ärztin", "it's \\back", "fatal")
    assert keywords.routing is not None and keywords.condition.contains_groups == {("message", literals)}
    assert any_contains_sql("`_lc__message`", literals) in keywords.expression
    assert "LIKE '%bad%string%'" in keywords.expression  # a pattern is not a plain contains: outside the group
    fields = rules["routed OR of field contains, one list long enough"]
    assert fields.condition.contains_groups == {("user.name", ("adm", "root", "oper", "svc"))}  # 3 are too few
    assert fields.expression.count("contains(`_lc__message`") == 3
    answered = fields.condition.render(Spelling(functions=True))
    assert "citysoc_contains_any(`user`.`name`, " in answered and "contains(`_lc__user__name`" not in answered
    assert fields.condition.render(Spelling(functions=False)) == fields.expression  # built-ins: as compiled


def test_rewrite_answers_contains_from_the_bitmap(keyword_rules: CompiledRuleSet) -> None:
    rules = [rule for rule in keyword_rules.detections("system.auth") if rule.routing is None]  # as the plan
    index = LiteralIndex.of(rules, min_literals=3)
    assert list(index.literals) == ["message"]  # user.name has one literal: below the threshold
    literals = index.literals["message"]
    assert literals == tuple(sorted(literals)) and "harmless" in literals and "session opened" in literals
    rule = _by_title(keyword_rules)["keyword pattern and a not"]
    rewritten = rule.condition.render(Spelling(bits=index.ids()))
    assert "contains(" not in rewritten and rewritten.count("LIKE") == 2
    word, bit = divmod(index.ids()[("message", "harmless")], WORD_BITS)
    assert f"((`{literal_column('message')}`[{word}] & {1 << bit}L) != 0)" in rewritten
    assert index.covers(rule) and not index.covers(_by_title(keyword_rules)["only a negation (not gated)"])
    user_rule = _by_title(keyword_rules)["regex keyword and a field contains"]
    assert contains_sql("`_lc__user__name`", "adm") in user_rule.condition.render(Spelling(bits=index.ids()))
    assert "rlike" in user_rule.expression and "contains(`message`, ' for invalid user')" in user_rule.expression


def test_literals_that_spell_sql_are_terms_like_any_other() -> None:
    """A literal that spells another test, or a quote, is one term: spelt as a bit, or quoted whole."""
    tricky = "x', 'y"
    inner = contains_sql("`_lc__message`", "abc")
    condition = Condition((Contains("message", inner), " OR ", Contains("message", tricky), " OR ",
                           Contains("message", "abc")))
    index = LiteralIndex({"message": tuple(sorted({"abc", inner, tricky}))})
    rendered = condition.render(Spelling(bits=index.ids()))
    assert "contains(" not in rendered and rendered.count("!= 0)") == 3
    assert condition.sql == " OR ".join(contains_sql("`_lc__message`", lit) for lit in (inner, tricky, "abc"))
    assert condition.literals == {("message", inner), ("message", tricky), ("message", "abc")}


# --- through Spark -------------------------------------------------------------------------------------

def _look_alikes(literal: str, rng: random.Random) -> list[str]:
    changed = list(literal)
    position = rng.randrange(len(changed))
    changed[position] = "#" if changed[position] != "#" else "%"
    middle = len(literal) // 2
    return [f"x {literal} y", literal.upper(), "".join(changed), f"{literal[:middle]}\n{literal[middle:]}",
            f"pre{literal}", f"{literal}{literal}"]


def _workload(rules: list[CompiledRule], real_lines: list[str], seed: int = 3) -> list[str]:
    """Messages: every literal and its look-alikes, pairs of literals (LIKE patterns need two), real lines."""
    rng = random.Random(seed)
    literals = sorted({literal for rule in rules for _, literal in rule.literals})
    messages = [text for literal in literals for text in _look_alikes(literal, rng)]
    for _ in range(len(literals) * 2):
        first, second = rng.choice(literals), rng.choice(literals)
        messages.append(f"{first} {second}")
        messages.append(f"{first.upper()}\t{rng.choice(real_lines)} {second}")
    messages += [*real_lines, "", "harmless " + literals[0], "��"]
    return messages


def _frame(spark: Any, messages: list[str], *, program: str = "sshd") -> Any:
    rows = [to_row(nest({"@timestamp": T0, "event.id": f"e{i}", "message": text, "process.name": program,
                         "user.name": "admin" if i % 7 == 0 else "bob", "organization.id": "acme",
                         "event.dataset": "system.auth"}))
            for i, text in enumerate([*messages, None])]
    return prepare_events(spark.createDataFrame(rows, spark_schema()))


def _pairs(frame: Any) -> set[tuple[str, str]]:
    return {(row["_event_id"], row["_rule_id"]) for row in frame.select("_event_id", "_rule_id").collect()}


def _real_lines(corpora: Path | None) -> list[str]:
    if corpora is None:
        return ["Failed password for invalid user admin from 10.0.0.1 port 22 ssh2"]
    return (corpora / "loghub" / "OpenSSH_2k.log").read_text().splitlines()[:300]


@pytest.mark.slow
def test_index_gives_the_same_matches_on_keyword_rules(spark: Any, keyword_rules: CompiledRuleSet) -> None:
    rules = keyword_rules.detections("system.auth")
    messages = [
        *_workload(rules, _real_lines(None)),
        "Failed password for invalid user root", "failed password for invalid user root",  # regex is cased
        "x ärztin login y", "ÄRZTIN LOGIN", "ΩΜΈΓΑ", "cat /dev/null > ~/.bash_history harmless",
        "cat /dev/null > ~/.bash_history", "sh_history cat /dev/null >", "it's \\back", "it's back",
        "New User: name=x, UID=0, GID=0", "Accepted publickey for a", "accepted publickey for a"]
    events = _frame(spark, messages)
    expected = _pairs(matched(events, rules, literal_index=False, jvm_functions=False))
    assert len({rule for _, rule in expected}) == len(rules)  # every rule matches something
    for functions in (True, False):
        assert _pairs(matched(events, rules, jvm_functions=functions)) == expected, functions
        assert _pairs(matched(events, rules, jvm_functions=functions, routing=False, chunk_size=2)) == expected, \
            functions


@pytest.mark.slow
def test_index_gives_the_same_matches_on_sigmahq_linux_and_aws(spark: Any, corpora: Path) -> None:
    """Every SigmaHQ linux/aws rule with literals, on a workload made of those literals and look-alikes."""
    sigma = corpora / "sigmahq" / "rules"
    ruleset = RuleCompiler(spark).compile([sigma / "linux", sigma / "cloud" / "aws"])
    rules = list(ruleset.detections("system.auth"))
    assert sum(rule.required_literals is not None for rule in rules) >= 15
    events = _frame(spark, _workload(rules, _real_lines(corpora)))
    expected = _pairs(matched(events, rules, literal_index=False, jvm_functions=False))
    assert len({rule for _, rule in expected}) >= 15
    assert _pairs(matched(events, rules, jvm_functions=True)) == expected
    assert _pairs(matched(events, rules, jvm_functions=False)) == expected
    # The IMDS rule's regex guard (`contains(arn, ':assumed-role/aws:')`) is in its expression itself:
    imds = next(rule for rule in ruleset.detections("aws.cloudtrail") if "IMDS" in rule.title)
    assert "contains(`aws`.`cloudtrail`.`user_identity`.`arn`, ':assumed-role/aws:') AND" in imds.expression


@pytest.mark.slow
def test_multi_contains_agrees_with_python(spark: Any) -> None:
    literals = ("he", "she", "his", "hers", "ωμέγα", "ab", "b", "😀x", "a" * 70, *tuple(f"w{i:03d}" for i in range(70)))
    texts = ["uSHers", "ΩΜΈΓΑ ωμέγα", "", "😀X😀", "A" * 71, "w000 W069 w042", "nothing", "abab", None]
    index = LiteralIndex({"message": literals})
    frame = spark.createDataFrame([(t,) for t in texts], "message string")
    frame = frame.withColumn("_lc__message", F.lower("message"))
    register_functions(spark)
    jvm_rows = frame.withColumns({name: F.expr(sql) for name, sql in index.bitmap_sql(functions=True).items()}
                                 ).collect()
    builtin_rows = frame.withColumn("_kw__message", F.expr(builtin_bitmap("message", literals))).collect()
    for jvm_row, builtin_row in zip(jvm_rows, builtin_rows, strict=True):
        text = jvm_row["_lc__message"]  # what the literals are looked for in: Spark's lower()
        if text is None:
            assert jvm_row["_kw__message"] is None and builtin_row["_kw__message"] is None
            continue
        words = [0] * ((len(literals) + WORD_BITS - 1) // WORD_BITS)
        for number, literal in enumerate(literals):
            if literal in text:
                words[number // WORD_BITS] |= 1 << (number % WORD_BITS)
        assert jvm_row["_kw__message"] == words, text
        assert builtin_row["_kw__message"] == words, text


# Text whose lower() is not byte-wise ASCII folding: the Kelvin sign lower-cases to an ASCII `k`, a dotted
# capital I to `i` + a combining dot, a final capital sigma to `ς` (context-sensitive), German sharp s stays.
UNICODE_TEXTS = ["K", "KELVIN \u212a", "İstanbul", "ΟΔΟΣ", "ΟΔΟΣ ΑΒ", "STRAßE", "Ärztin LOGIN", "mixed Case ascii",
                 "", "tab\tand\nline", "😀 Emoji X", "plain"]
UNICODE_LITERALS = ["k", "kelvin k", "i̇stanbul", "οδος", "οδος", "ος αβ", "straße", "ärztin", "login", "case a", "\n",
                    "😀 emoji x", "x"]


@pytest.mark.slow
@pytest.mark.parametrize("icu", ["true", "false"])
def test_folded_functions_answer_what_lower_answers(spark: Any, icu: str) -> None:
    """`citysoc_contains_any` / `citysoc_multi_contains` / `citysoc_in_lower` against the same tests on
    Spark's `lower()`, on ASCII (folded while read) and on text only Spark's own lower-casing handles,
    under both of Spark's case-mapping settings (ICU or the JDK's)."""
    register_functions(spark)
    previous = spark.conf.get("spark.sql.icu.caseMappings.enabled")
    spark.conf.set("spark.sql.icu.caseMappings.enabled", icu)
    try:
        frame = spark.createDataFrame([(t,) for t in [*UNICODE_TEXTS, None]], "m string")
        literals = ", ".join(sql_string(literal) for literal in UNICODE_LITERALS)
        equals = [*UNICODE_LITERALS, ""]
        rows = frame.selectExpr(
            "m",
            f"citysoc_contains_any(m, {literals}) AS any_folded",
            f"({' OR '.join(f'contains(lower(m), {sql_string(lit)})' for lit in UNICODE_LITERALS)}) AS any_lower",
            f"citysoc_multi_contains(m, {literals}) AS bits_folded",
            f"transform(array({literals}), l -> contains(lower(m), l)) AS found_lower",
            f"citysoc_in_lower(m, {', '.join(map(sql_string, equals))}) AS in_folded",
            f"lower(m) IN ({', '.join(map(sql_string, equals))}) AS in_lower").collect()
    finally:
        spark.conf.set("spark.sql.icu.caseMappings.enabled", previous)
    assert sum(bool(row["any_lower"]) for row in rows) >= 8 and sum(bool(row["in_lower"]) for row in rows) >= 5
    for row in rows:
        assert row["any_folded"] == row["any_lower"], row["m"]
        assert row["in_folded"] == row["in_lower"], row["m"]
        if row["m"] is None:
            assert row["bits_folded"] is None
            continue
        found = [bool(row["bits_folded"][i // WORD_BITS] >> (i % WORD_BITS) & 1) for i in range(len(UNICODE_LITERALS))]
        assert found == row["found_lower"], row["m"]


def test_folded_functions_agree_with_python_on_random_ascii(spark: Any) -> None:
    """The folded readers' own automaton (byte classes, accepting states marked in the table) against
    Python on random mixed-case ASCII over a small alphabet: overlapping literals (`he`/`she`/`hers`,
    fail links), literals inside literals, punctuation, characters no literal holds, > 63 literals."""
    register_functions(spark)
    rng = random.Random(7)
    alphabet = "abehrsAEHRS .-_/xX"
    literals = sorted({"he", "she", "his", "hers", "a", "e-s", " /", "xx", "rare_/", "bab", "abab"}
                      | {"".join(rng.choice("abehrs .-_/") for _ in range(rng.randint(2, 6))) for _ in range(80)})
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(400)]
    quoted = ", ".join(sql_string(literal) for literal in literals)
    rows = spark.createDataFrame([(t,) for t in texts], "m string").selectExpr(
        "m", f"citysoc_multi_contains(m, {quoted}) AS bits",
        *(f"citysoc_contains_any(m, {sql_string(literal)}) AS any{i}" for i, literal in enumerate(literals[:12])),
        f"citysoc_contains_any(m, {quoted}) AS any_all").collect()
    assert len(literals) > WORD_BITS
    hits = 0
    for row in rows:
        lowered = row["m"].lower()
        found = [literal in lowered for literal in literals]
        assert [bool(row["bits"][i // WORD_BITS] >> (i % WORD_BITS) & 1) for i in range(len(literals))] == found, \
            row["m"]
        assert row["any_all"] == any(found), row["m"]
        assert [row[f"any{i}"] for i in range(12)] == found[:12], row["m"]
        hits += sum(found)
    assert 0 < hits < len(rows) * len(literals) / 2  # both outcomes are exercised


def test_folded_functions_refuse_what_they_cannot_answer(spark: Any) -> None:
    register_functions(spark)
    frame = spark.createDataFrame([("x", 1)], "m string, n int")
    for expression, message in [("citysoc_contains_any(m)", "at least one literal"),
                                ("citysoc_contains_any(m, m)", "string constant"),
                                ("citysoc_contains_any(n, 'x')", "reads a string"),
                                ("citysoc_multi_contains(m, '')", "non-empty"),
                                ("citysoc_in_window(m, 1L, 2L)", "reads a bigint"),
                                ("citysoc_in_window(CAST(n AS BIGINT), CAST(n AS BIGINT), 2L)", "bigint constant"),
                                ("citysoc_in_window(CAST(n AS BIGINT), 1L)", "micros, since and until")]:
        with pytest.raises((AnalysisException, IllegalArgumentException), match=message):
            frame.selectExpr(expression).collect()
    assert frame.selectExpr("citysoc_in_lower(m, '', 'X', 'x')").first()[0] is True  # `in` takes any value


def test_without_javac_there_is_no_jar_and_one_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(jvm, "find_javac", lambda: None)
    monkeypatch.setattr(jvm, "_warned", set())
    jvm.ensure_jar.cache_clear()
    try:
        with capture_logs() as logs:
            assert jvm.ensure_jar() is None
            jvm.ensure_jar.cache_clear()
            assert jvm.ensure_jar() is None
    finally:
        jvm.ensure_jar.cache_clear()
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert "JVM functions are off" in logs[0]["event"] and "no javac" in logs[0]["reason"]


@pytest.mark.slow
def test_the_jar_builds_from_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if jvm.find_javac() is None:
        require("javac (a JDK)", "no JDK here: the built-in fallback is what runs")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    jvm.ensure_jar.cache_clear()
    try:
        jar = jvm.ensure_jar()
    finally:
        jvm.ensure_jar.cache_clear()
    assert jar is not None and jar.parent == tmp_path / "citysoc" / "jvm"
    names = zipfile.ZipFile(jar).namelist()
    assert {"org/citysoc/spark/MultiContains.class", "org/citysoc/spark/FoldedMatch.class",
            "org/citysoc/spark/Functions.class"} <= set(names)
