"""The sans-IO parts of the intake: syslog stream framing, RELP frames, HTTP bodies, account extraction."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from collectors.intake import RateLimitedLog, cloudtrail_accounts
from collectors.listeners import relp
from collectors.listeners.framing import FramingError, Message, SyslogFramer
from collectors.listeners.http import BadBody, TooLarge, split_events
from collectors.records import RawRecord


def frame_in_chunks(data: bytes, *, max_bytes: int, seed: int) -> list[Message]:
    """Feed `data` in random pieces (1 byte to 40): framing must not depend on where reads split."""
    rng = random.Random(seed)
    framer = SyslogFramer(max_bytes=max_bytes)
    messages, position = [], 0
    while position < len(data):
        step = rng.randint(1, 40)
        messages += framer.feed(data[position:position + step])
        position += step
    return messages + framer.finish()


LINES = [b"<13>1 2026-01-05T10:00:00Z web-01 sshd 42 - - Failed password for root from 198.51.100.7 port 22 ssh2",
         b"<38>Jan  5 10:00:01 web-01 su[77]: pam_unix(su:auth): authentication failure",
         b"<14>Jan  5 10:00:02 web-01 app: 123 digits and spaces \xc3\xa9 utf-8"]


@pytest.mark.parametrize("seed", range(5))
def test_newline_framing_is_detected_and_independent_of_read_boundaries(seed: int) -> None:
    stream = b"\r\n".join(LINES[:2]) + b"\r\n\n" + LINES[2] + b"\n"
    messages = frame_in_chunks(stream, max_bytes=1024, seed=seed)
    assert [m.payload for m in messages] == LINES  # CRLF and LF both end a line; the blank line is no message
    assert not any(m.cut for m in messages)


@pytest.mark.parametrize("seed", range(20))
def test_many_lines_in_one_read_frame_as_they_do_byte_by_byte(seed: int) -> None:
    # reads holding many whole lines take a one-pass path; a read of one byte never does: both must agree,
    # over-long lines, blank lines, lone CRs and CRLFs included
    rng = random.Random(seed)
    pieces = [*LINES, b"", b"\r", b"x" * 50, b"y" * 51, b"<13>z\r"]
    stream = b"".join(rng.choice(pieces) + rng.choice([b"\n", b"\r\n"]) for _ in range(200)) + b"tail"
    stream = stream.lstrip(b"\r\n")

    def framed(step: int) -> list[tuple[bytes, int, bool]]:
        framer = SyslogFramer(max_bytes=50)
        messages = [m for start in range(0, len(stream), step) for m in framer.feed(stream[start:start + step])]
        return [(m.payload, m.size, m.cut) for m in messages + framer.finish()]

    byte_by_byte = framed(1)
    assert any(cut for _, _, cut in byte_by_byte) and byte_by_byte[-1] == (b"tail", 4, False)
    for step in (len(stream), 4096, 333, 97):
        assert framed(step) == byte_by_byte


@pytest.mark.parametrize("seed", range(5))
def test_octet_counting_is_detected_from_the_first_byte(seed: int) -> None:
    # a message may itself contain LF under octet-counting: the count, not the LF, ends it
    payloads = [*LINES, b"<13>multi\nline"]
    stream = b"".join(b"%d %s" % (len(p), p) for p in payloads)
    framer_messages = frame_in_chunks(stream, max_bytes=1024, seed=seed)
    assert [m.payload for m in framer_messages] == payloads
    framer = SyslogFramer(max_bytes=1024)
    framer.feed(stream[:1])
    assert framer.framing == "octet-counting"


def test_an_over_long_line_keeps_its_start_and_is_marked_and_the_next_line_is_intact() -> None:
    long = b"<13>" + b"x" * 5000
    messages = frame_in_chunks(long + b"\n" + LINES[0] + b"\n", max_bytes=200, seed=1)
    assert messages[0] == Message(long[:200], 5004, cut=True)
    assert messages[1] == Message(LINES[0], len(LINES[0]))


def test_an_over_long_octet_counted_message_is_cut_and_the_stream_stays_in_step() -> None:
    long = b"<13>" + b"y" * 3000
    stream = b"%d %s" % (len(long), long) + b"%d %s" % (len(LINES[1]), LINES[1])
    messages = frame_in_chunks(stream, max_bytes=100, seed=2)
    assert messages == [Message(long[:100], len(long), cut=True), Message(LINES[1], len(LINES[1]))]


def test_memory_stays_bounded_by_the_cap_whatever_the_line_length() -> None:
    framer = SyslogFramer(max_bytes=1000)
    for _ in range(1000):  # 64 MB without a line end
        assert framer.feed(b"z" * 65536) == []
        assert len(framer._buffer) <= 1000
    assert framer.feed(b"\n") == [Message(b"z" * 1000, 65536 * 1000, cut=True)]


def test_end_of_stream_yields_the_last_line_and_marks_a_counted_message_cut_short() -> None:
    framer = SyslogFramer(max_bytes=1024)
    assert framer.feed(b"<13>no line end") == []
    assert framer.finish() == [Message(b"<13>no line end", 15)]
    counted = SyslogFramer(max_bytes=1024)
    assert counted.feed(b"100 <13>only part") == []
    assert counted.finish() == [Message(b"<13>only part", 100, cut=True)]


@pytest.mark.parametrize("garbage", [b"12x <13>msg", b"12345678901 <13>msg", b"5 <13>ab" + b"z"])
def test_broken_octet_counting_is_a_framing_error(garbage: bytes) -> None:
    framer = SyslogFramer(max_bytes=1024)
    with pytest.raises(FramingError):
        framer.feed(garbage)


# --- RELP ---------------------------------------------------------------------------------------------

OFFERS = b"relp_version=0\nrelp_software=librelp,1.11.0,http://librelp.adiscon.com\ncommands=syslog"
OPEN = b"1 open %d %s\n" % (len(OFFERS), OFFERS)  # as omrelp sends it


@pytest.mark.parametrize("seed", range(5))
def test_relp_frames_parse_as_librelp_writes_them_whatever_the_chunking(seed: int) -> None:
    stream = OPEN + b"2 syslog 13 <13>hello\nyou\n" + b"3 close 0\n"
    rng = random.Random(seed)
    parser, frames, position = relp.RelpParser(), [], 0
    while position < len(stream):
        step = rng.randint(1, 9)
        frames += parser.feed(stream[position:position + step])
        position += step
    assert [(f.txnr, f.command, f.data) for f in frames] == [
        (1, "open", OFFERS), (2, "syslog", b"<13>hello\nyou"), (3, "close", b"")]
    assert relp.parse_offers(frames[0].data) == {
        "relp_version": ["0"], "relp_software": ["librelp", "1.11.0", "http://librelp.adiscon.com"],
        "commands": ["syslog"]}


def test_relp_frame_over_the_limit_is_cut_but_the_session_stays_in_step() -> None:
    parser = relp.RelpParser(max_data=10)
    frames = parser.feed(b"7 syslog 30 " + b"a" * 30 + b"\n8 syslog 2 ok\n")
    assert [(f.txnr, f.data, f.size, f.cut) for f in frames] == [(7, b"a" * 10, 30, True), (8, b"ok", 2, False)]


@pytest.mark.parametrize("bad", [b"x open 0\n", b"1 op3n 0\n", b"1 syslog 3 abcX", b"1234567890 syslog 0\n",
                                 b"1 syslog 1234567890 ", b"1 syslog 5\n", b"1  syslog 0\n"])
def test_broken_relp_framing_is_a_protocol_error(bad: bytes) -> None:
    with pytest.raises(relp.RelpProtocolError):
        relp.RelpParser().feed(bad)


def test_relp_answers_are_what_librelp_expects() -> None:
    answer, opened = relp.open_response(1, {"relp_version": ["0"], "commands": ["syslog"]})
    assert opened and answer.startswith(b"1 rsp ") and b" 200 OK\nrelp_version=0\n" in answer
    assert answer.endswith(b"commands=syslog\n")
    assert relp.parse_offers(relp.RelpParser().feed(answer)[0].data[7:])["commands"] == ["syslog"]
    assert relp.open_response(1, {"relp_version": ["0"], "commands": ["eventlog"]}) == (
        b"1 rsp 44 500 required command not supported by client\n", False)
    assert relp.ok(42) == b"42 rsp 6 200 OK\n"
    assert relp.close_response(9) == b"9 rsp 0\n"
    assert relp.SERVER_CLOSE == b"0 serverclose 0\n"
    refused = relp.error(5, "no source of any member organisation accepts relp from 203.0.113.9: register " * 3)
    text = relp.RelpParser().feed(refused)[0].data
    assert text.startswith(b"500 no source") and len(text) == 4 + 80 and b"\n" not in text
    assert relp.next_txnr(relp.MAX_TXNR) == 1


# --- HTTP bodies --------------------------------------------------------------------------------------

def test_ndjson_lines_are_kept_byte_for_byte_and_a_bad_line_is_left_for_the_parser() -> None:
    body = b'{"eventID": "a"}\r\n\n{not json}\n{"eventID":  "b"}'
    assert split_events(body, max_record=100) == [b'{"eventID": "a"}', b"{not json}", b'{"eventID":  "b"}']


def test_a_json_array_gives_one_record_per_element() -> None:
    assert split_events(b' [{"a": 1}, {"b": [2]}] ', max_record=100) == [b'{"a":1}', b'{"b":[2]}']


@pytest.mark.parametrize("body", [b"", b"   \n", b"hello world\nsecond line", b"[1, 2", b"[]", b"<13>syslog line"])
def test_a_body_that_is_not_events_is_refused(body: bytes) -> None:
    with pytest.raises(BadBody):
        split_events(body, max_record=100)


def test_a_record_over_the_limit_is_refused_by_number() -> None:
    with pytest.raises(TooLarge, match="record #2"):
        split_events(b'{"a": 1}\n{"b": "' + b"x" * 200 + b'"}', max_record=100)


# --- what the intake reads from content: only cloud accounts, to refuse them ---------------------------

def record(payload: bytes) -> RawRecord:
    return RawRecord(payload, "test", datetime(2026, 1, 5, tzinfo=UTC))


def test_cloudtrail_accounts_are_the_accounts_a_record_is_filed_under() -> None:
    records = [record(b'{"recipientAccountId": "111122223333", "userIdentity": {"accountId": "999988887777"}}'),
               record(b'{"userIdentity": {"accountId": 444455556666}}'),
               record(b'{"Records": [{"recipientAccountId": "777788889999"}, 5]}'),
               record(b"not json"), record(b'["list"]'), record(b'{"recipientAccountId": true}')]
    assert cloudtrail_accounts(records) == {"111122223333", "444455556666", "777788889999"}


def test_a_refused_sender_is_logged_once_a_minute_however_often_it_sends() -> None:
    now = [0.0]
    warnings = RateLimitedLog(every=60, clock=lambda: now[0], max_keys=3)
    assert warnings.warning("udp 203.0.113.9", "sender refused")
    assert not any(warnings.warning("udp 203.0.113.9", "sender refused") for _ in range(1000))
    assert warnings.warning("udp 203.0.113.10", "sender refused")  # another sender is its own line
    now[0] = 60.0
    assert warnings.warning("udp 203.0.113.9", "sender refused")
    for sender in range(10):  # a flood of distinct senders does not grow the table past its bound
        warnings.warning(f"udp 198.51.100.{sender}", "sender refused")
    assert len(warnings._last) <= 3 + 1


@pytest.mark.parametrize("crs", [True, False])
@pytest.mark.parametrize("seed", range(20))
def test_the_payload_fast_path_frames_as_feed_does(seed: int, crs: bool) -> None:
    # what the listener does: whole messages as one binary column; a read completing or starting a cut message
    # falls back to `feed`, and the two together give feed's messages whatever the read boundaries; a stream
    # without CRs takes the column path's vectorised framing, one with them its line-by-line one
    rng = random.Random(seed)
    pieces = [*LINES, b"", b"x" * 50, b"y" * 51, b"<13>\x00\xff", b"\n"]
    ends = [b"\n"]
    if crs:
        pieces += [b"\r", b"<13>z\r", b"<13>a\rb"]
        ends += [b"\r\n"]
    stream = b"\r\n" + b"".join(rng.choice(pieces) + rng.choice(ends) for _ in range(200)) + b"tail"
    reference = SyslogFramer(max_bytes=50)
    expected = [(m.payload, m.cut) for m in reference.feed(stream) + reference.finish()]
    fast = 0
    for step in (1, 7, 97, 333, 4096, len(stream)):
        framer, got = SyslogFramer(max_bytes=50), []
        for start in range(0, len(stream), step):
            chunk = stream[start:start + step]
            column = framer.feed_column(chunk)
            if column is None:
                got += [(m.payload, m.cut) for m in framer.feed(chunk)]
            else:
                column.validate(full=True)
                got += [(payload, False) for payload in column.to_pylist()]
                fast += len(column)
        got += [(m.payload, m.cut) for m in framer.finish()]
        assert got == expected, step
    assert fast > 0


def test_the_payload_fast_path_leaves_a_new_and_an_octet_counted_connection_to_feed() -> None:
    framer = SyslogFramer(max_bytes=1024)
    assert framer.feed_column(b"5 <13>a") is None and framer.framing is None
    assert [m.payload for m in framer.feed(b"5 <13>a")] == [b"<13>a"]
    assert framer.framing == "octet-counting" and framer.feed_column(b"5 <13>b") is None
