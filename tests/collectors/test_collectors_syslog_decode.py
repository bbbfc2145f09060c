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
from collectors.auditd import DATASET as AUDITD_DATASET
from collectors.base import may_be_blank
from collectors.cef import CEF_DATASET
from collectors.records import RawRecord, RecordBlock
from collectors.syslog import SYSLOG_DATASET, _may_need_trimming, _may_open_own_format, decode
from collectors.sysmon_linux import DATASET as SYSMON_DATASET

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


_STARTS = st.sampled_from(["<Event", "<?xml", "type=", "node=", "CEF:", "LEEF:", "<Ev", "CE", "typ", " ", "\u00a0",
                           "\u3000", "\t", "\x1c", "a", "Connection", "LEEF", "nod"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.lists(st.one_of(_STARTS, st.text(max_size=3)), max_size=4).map("".join), max_size=10),
       st.integers(0, 3))
def test_the_own_format_tests_are_skipped_only_where_they_would_all_say_false(messages: list[str], cut: int) -> None:
    column = pa.array(["CEF:"] * cut + messages, pa.string()).slice(cut)
    text = pc.utf8_ltrim_whitespace(column)
    starts = [pc.starts_with(text, start) for start in ("<Event", "<?xml", "type=", "node=", "CEF:", "LEEF:")]
    assert _may_open_own_format(column) or not any(pc.any(found).as_py() for found in starts)


def test_own_format_lines_are_still_recognised_beside_plain_ones() -> None:
    lines = [b"<13>Mar  1 10:00:00 h cron[1]: Connection closed by 192.0.2.7",
             b"<13>Mar  1 10:00:00 h sysmon: <Event><System><EventID>1</EventID></System></Event>",
             b"<13>Mar  1 10:00:00 h audisp: type=USER_LOGIN msg=audit(1.0:2): pid=1 uid=0",
             b"<13>Mar  1 10:00:00 h x: CEF:0|V|P|1|100|name|5|src=192.0.2.7"]
    plain = SyslogParser(ParserOptions(year=2026)).parse_records(
        [RawRecord(lines[0], "t", NOW)], tenant="t", source="s")
    assert list(plain.tables) == ["system.syslog"]
    mixed = SyslogParser(ParserOptions(year=2026)).parse_records(
        [RawRecord(line, "t", NOW) for line in lines], tenant="t", source="s")
    assert {SYSLOG_DATASET, SYSMON_DATASET, AUDITD_DATASET, CEF_DATASET} <= set(mixed.tables), mixed.dead
