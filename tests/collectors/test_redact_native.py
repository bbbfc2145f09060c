"""The free-text redaction's compiled pre-test (`collectors/native/redact.c`) against the expression it stands for.

The pre-test must report every line `_TEXT_SECRET_RE2` matches (it may report more): checked line by line on
every string literal of the collector tests, loghub and the bench stream, and Hypothesis lines made of the
expression's own words in mixed case, Unicode case variants (`ſ`, `K`), spaces and separators. The redacted
column is the same with `SOC_NATIVE=0` as compiled, and both paths redact a secret whose keyword is spelt with a
Unicode case variant even when it is the batch's only one.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.redact import _TEXT_SECRET_RE2, REDACTED, redact_text, redact_text_column
from tests.collectors.test_native import _stream, _test_strings, compiled

WORDS = ("password", "passwd", "pass", "secret", "token", "api_key", "api-key", "apikey", "access_key", "accesskey",
         "secret-key", "key", "pas", "tok", "my")
SEPARATORS = ("=", ":", " = ", "\t:", " ", ",", "=\"a b\"", ": '", "\n=", "\v=")


def _candidates(lines: pa.Array) -> list[bool]:
    _, offsets, data = lines.buffers()
    count, bitmap = compiled("redact").candidates(offsets, data or b"", lines.offset, len(lines))
    found = pa.Array.from_buffers(pa.bool_(), len(lines), [None, pa.py_buffer(bitmap)]).to_pylist()
    assert count == sum(found)
    return found  # type: ignore[no-any-return]


def _both_ways(lines: pa.Array, monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    fast = redact_text_column(lines).to_pylist()
    with monkeypatch.context() as patched:
        patched.setenv("SOC_NATIVE", "0")
        pure = redact_text_column(lines).to_pylist()
    assert fast == pure
    return fast


def _check(texts: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    lines = pa.array(texts, pa.string())
    matched = pc.fill_null(pc.match_substring_regex(lines, _TEXT_SECRET_RE2), False).to_pylist()
    reported = _candidates(lines)
    missed = [text for text, match, report in zip(texts, matched, reported, strict=True) if match and not report]
    assert not missed
    _both_ways(lines, monkeypatch)


def test_every_match_is_reported_in_the_collector_tests_loghub_and_the_stream(
        corpora: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    strings = [text.encode("utf-8", "surrogatepass") for text in _test_strings()]
    _check([payload.decode("utf-8", "replace") for payload in strings + _stream(corpora)], monkeypatch)


_CASED = st.sampled_from(WORDS).flatmap(lambda word: st.lists(
    st.sampled_from([0, 1, 2]), min_size=len(word), max_size=len(word)).map(
    lambda cases: "".join(("\u017f" if c == "s" else "\u212a" if c == "k" else c.upper()) if case == 2 else
                          c.upper() if case == 1 else c for c, case in zip(word, cases, strict=True))))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.one_of(_CASED, st.sampled_from(SEPARATORS), st.text(max_size=6)), max_size=8).map(
    "".join), max_size=12))
def test_every_match_is_reported_for_lines_of_the_expressions_own_words(texts: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _check(texts, monkeypatch)


def test_a_unicode_case_variant_is_redacted_alone_in_its_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    for text in ("pa\u017fsword=hunter2", "to\u212aen: abc", "api_\u212aey=k1"):
        assert _both_ways(pa.array([text]), monkeypatch) == [redact_text(text)]
        assert REDACTED in redact_text(text)


def test_sliced_lines_and_lines_with_nothing_to_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = pa.array(["token=1", "Failed password for root from 192.0.2.7", None, "password = x", "", "ok"])
    assert _candidates(lines.slice(1, 2)) == [False, False]
    assert _candidates(lines.slice(3)) == [True, False, False]
    assert _both_ways(lines.slice(1), monkeypatch) == [
        "Failed password for root from 192.0.2.7", None, f"password = {REDACTED}", "", "ok"]
    assert _both_ways(lines.slice(1, 1), monkeypatch) == ["Failed password for root from 192.0.2.7"]
