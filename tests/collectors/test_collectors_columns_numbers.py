"""`collectors.columns.int64_from_text` (a batch) against `int64_or_none` (one record): ASCII decimal digits
that fit in int64, anything else null, on columns that take the shortcut (every value plain digits under 19
characters), the full test, or are all null."""

from __future__ import annotations

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.columns import int64_from_text, int64_or_none

_TEXTS = st.one_of(st.none(), st.integers(0, 10**25).map(str), st.sampled_from(
    ["", "007", "-1", "+1", " 1", "1 ", "\u0661", "²", "9223372036854775807", "9223372036854775808",
     "18446744073709551616", "0"]), st.text(alphabet="0123456789x", max_size=21))


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEXTS, max_size=12))
def test_batch_numbers_equal_the_per_record_twin(texts: list[str | None]) -> None:
    found = int64_from_text(pa.array(texts, pa.string()))
    assert found.type == pa.int64()
    assert found.to_pylist() == [int64_or_none(text) for text in texts]


def test_plain_all_null_and_empty_columns() -> None:
    assert int64_from_text(pa.array(["1", "22", None, "123456789012345678"])).to_pylist() == [
        1, 22, None, 123456789012345678]
    assert int64_from_text(pa.array([None, None], pa.string())).to_pylist() == [None, None]
    assert int64_from_text(pa.array([], pa.string())).to_pylist() == []
