"""`collectors.syslog.decode`: the payloads as text, CR, LF and NUL cut from the end and U+FEFF from the start.

The trims run only when a line's last byte or first three bytes call for them, and a record block is searched for
blank payloads only when one is empty or starts with a space: neither shortcut may skip a line its kernels would
change or leave out (Hypothesis lines of those characters and others, sliced arrays, nulls).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors import ParserOptions, SyslogParser
from collectors.base import may_be_blank
from collectors.records import RawRecord, RecordBlock
from collectors.syslog import _may_need_trimming, decode

NOW = datetime(2026, 3, 2, tzinfo=UTC)
_PIECES = st.one_of(st.sampled_from(["\r", "\n", "\x00", "\ufeff", "\ufef0", "é", "a", " ", "\r\n"]),
                    st.text(max_size=4))


def _trimmed(texts: pa.Array) -> pa.Array:
    return pc.utf8_ltrim(pc.utf8_rtrim(texts, characters="\r\n\x00"), characters="\ufeff")


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(_PIECES, max_size=5).map("".join)), max_size=12), st.integers(0, 3))
def test_the_trims_are_skipped_only_where_they_change_nothing(lines: list[str | None], cut: int) -> None:
    texts = pa.array(["\r"] * cut + lines, pa.string()).slice(cut)
    assert _may_need_trimming(texts) or _trimmed(texts).to_pylist() == texts.to_pylist()


def test_decode_trims_line_ends_and_a_byte_order_mark_and_keeps_the_rest() -> None:
    payloads = [b"<13>a\r\n", b"\xef\xbb\xbf<13>b", b"<13>c\x00", b"<13>d", b"<13>\xff"]
    expected = ["<13>a", "<13>b", "<13>c", "<13>d", "<13>\ufffd"]
    assert decode([RawRecord(payload, "test", NOW) for payload in payloads]).to_pylist() == expected
    block = RecordBlock.of([b"<13>x", b"<13>y"], received=NOW, origin_prefix="t:", first=0)
    assert decode(block).to_pylist() == ["<13>x", "<13>y"]
    assert decode(block.cut(1, 2)).to_pylist() == ["<13>y"]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=6).map(lambda text: text.replace(b"x", b" ")), max_size=12), st.integers(0, 3))
def test_a_block_is_searched_for_blank_payloads_whenever_it_holds_one(payloads: list[bytes], cut: int) -> None:
    column = pa.array([b""] * cut + payloads, pa.binary()).slice(cut)
    blank = [not payload or payload.isspace() for payload in payloads]
    assert may_be_blank(column) or not any(blank)
    block = RecordBlock.of([b"<13>a", *payloads], received=NOW, origin_prefix="t:", first=0).cut(1, len(payloads) + 1)
    assert SyslogParser(ParserOptions()).parse_records(block, tenant="t", source="s").skipped == sum(blank)
