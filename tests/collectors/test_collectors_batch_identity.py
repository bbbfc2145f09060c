"""Differential tests: the syslog parser's batch path (Arrow compute over the whole batch) gives, for every
record, exactly what parsing that record alone gives: the same events field by field (ids included) and the
same dead letters with the same reasons.

A batch is where vectorised code can go wrong in ways one record cannot show: a mask spread over the wrong
rows, a fast path taken for the batch because most rows qualify, a row of one shape shifting the values of
another. Inputs: loghub's OpenSSH and Apache samples (`../shared/corpora/loghub`, every 25th line),
the shapes the other syslog tests use, and near-misses of them from Hypothesis.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from collectors import ParserOptions, RawRecord, SyslogParser
from collectors.records import RecordBlock
from tests.collectors.test_collectors_fuzz import SYSLOG_SEEDS, mutated

NOW = datetime(2026, 3, 2, tzinfo=UTC)
LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "loghub"
OTHER_SHAPES = [
    *SYSLOG_SEEDS,
    "<38>Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
    "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure; logname= uid=0 euid=0 tty=NODEVssh "
    "ruser= rhost=218.188.2.4",
    "Mar  1 09:00:00 web01 syslogd 1.4.1: restart.",
    "<13>Feb  5 17:32:18 10.0.0.99 Use the BFG!",
    "<86>1 2024-03-01T09:00:00Z web01 sshd 811 - - Accepted publickey for deploy from 192.0.2.9 port 50022 ssh2",
    "Mar  1 09:00:01 web01 sudo: pam_unix(sudo:auth): authentication failure; logname=bob uid=1000 euid=0 "
    "tty=/dev/pts/1 ruser=bob rhost=  user=bob",
    "Mar  1 09:00:02 web01 su: FAILED SU (to root) bob on pts/1",
    "Mar  1 09:00:03 web01 login[99]: FAILED LOGIN (1) on '/dev/tty1' FOR 'root', Authentication failure",
    "Mar  1 09:00:04 web01 sshd[7]: message repeated 3 times: [ Failed password for root from 192.0.2.4 port 22 "
    "ssh2]",
    "Mar  1 09:00:05 web01 sshd[8]: Connection closed by 192.0.2.5 port 4022 [preauth]",
    "Feb 29 09:00:00 web01 sshd[9]: a date 2023 does not have",
    "<999>Mar  1 09:00:06 web01 kernel: priority out of range",
    "password=hunter2 not syslog at all",
    "",
    "   ",
]


def _records(lines: list[bytes]) -> list[RawRecord]:
    return [RawRecord(line, f"test #{number}", NOW) for number, line in enumerate(lines)]


def _outcome(parser: SyslogParser, records: list[RawRecord]) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """Event rows (each with its dataset) and dead letters (origin, reason, raw) of one call."""
    batch = parser.parse_records(records, tenant="council", source="syslog")
    events = [{"dataset": dataset, **row} for dataset, table in batch.tables.items() for row in table.to_pylist()]
    return events, [(letter.origin, letter.reason, letter.raw) for letter in batch.dead]


def batch_is_record_by_record(parser: SyslogParser, lines: list[bytes]) -> bool:
    """Asserts that parsing `lines` as one batch equals parsing each alone; False (nothing to compare) when two
    lines store the same text at the same time, which by design take ids by occurrence in a batch."""
    records = _records(lines)
    batch_events, batch_dead = _outcome(parser, records)
    alone_events: list[dict[str, Any]] = []
    alone_dead: list[tuple[str, str, str]] = []
    for record in records:
        events, dead = _outcome(parser, [record])
        alone_events.extend(events)
        alone_dead.extend(dead)
    assert sorted(batch_dead) == sorted(alone_dead)
    keys = Counter((row["@timestamp"], row["event"]["original"]) for row in batch_events)
    if any(count > 1 for count in keys.values()):
        return False
    by_text = {row["event"]["original"]: row for row in alone_events}
    assert len(batch_events) == len(alone_events)
    for row in batch_events:
        assert row == by_text[row["event"]["original"]], row["event"]["original"]
    return True


def _spread(path: Path, every: int) -> list[bytes]:
    if not path.is_file():
        pytest.skip(f"{path} is not there (../shared/corpora)")
    return path.read_bytes().splitlines()[::every]


@pytest.mark.parametrize("name", ["OpenSSH_2k.log", "Apache_2k.log"])
def test_loghub_samples_batch_equals_record_by_record(name: str) -> None:
    parser = SyslogParser(ParserOptions(year=2024, now=NOW))
    assert batch_is_record_by_record(parser, _spread(LOGHUB / name, 25))


@pytest.mark.parametrize("options", [ParserOptions(year=2024, now=NOW), ParserOptions(now=NOW)],
                         ids=["year given", "year from arrival"])
def test_known_shapes_batch_equals_record_by_record(options: ParserOptions) -> None:
    assert batch_is_record_by_record(SyslogParser(options), [line.encode() for line in OTHER_SHAPES])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(mutated(SYSLOG_SEEDS), st.sampled_from(OTHER_SHAPES).map(str.encode),
                          st.binary(max_size=200)), min_size=2, max_size=6, unique=True))
def test_near_misses_batch_equals_record_by_record(lines: list[bytes]) -> None:
    assume(batch_is_record_by_record(SyslogParser(ParserOptions(year=2024, now=NOW)), lines))


def test_a_secret_starting_a_line_after_a_word_is_redacted_in_a_batch() -> None:
    """The batch's values lie end to end in one buffer: `...kernel: x` then `password=...` read `xpassword=`
    there, which has no word boundary; the whole-batch search must not take that for "no secret"."""
    parser = SyslogParser(ParserOptions(year=2024, now=NOW))
    lines = [b"Mar  1 09:00:06 web01 kernel: x", b"password=hunter2 sent by a broken client"]
    batch = parser.parse_records(_records(lines), tenant="council", source="syslog")
    stored = [row["event"]["original"] for table in batch.tables.values() for row in table.to_pylist()]
    kept = [letter.raw for letter in batch.dead]
    assert "hunter2" not in " ".join(stored + kept)
    assert "password=[REDACTED] sent by a broken client" in kept


@pytest.mark.parametrize("options", [ParserOptions(year=2024, now=NOW), ParserOptions(now=NOW)],
                         ids=["year given", "year from arrival"])
def test_a_record_block_parses_as_its_records_do(options: ParserOptions) -> None:
    # the live path hands the parser columns (a block of two reads that arrived at different times); the
    # records it holds, as a list, must give the same events and dead letters, blank lines and bad UTF-8 included
    lines = [line.encode() for line in OTHER_SHAPES] + [b"<13>Mar  1 09:00:07 web01 app: \xff\xfe bad", b"\t"]
    later = NOW.replace(year=2027, month=1, day=15)
    block = RecordBlock.concat([
        RecordBlock.of(lines[:9], received=NOW, origin_prefix="tcp 192.0.2.7:514 #", first=1),
        RecordBlock.of(lines[9:], received=later, origin_prefix="tcp 192.0.2.7:514 #", first=10)])
    parser = SyslogParser(options)
    as_block = parser.parse_records(block, tenant="council", source="syslog")
    as_list = parser.parse_records(list(block), tenant="council", source="syslog")
    assert as_block.dead == as_list.dead and as_block.skipped == as_list.skipped == 3
    assert as_block.tables.keys() == as_list.tables.keys()
    for dataset, table in as_block.tables.items():
        assert table.equals(as_list.tables[dataset]), dataset
    not_syslog = lines.index(b"password=hunter2 not syslog at all")
    assert f"tcp 192.0.2.7:514 #{not_syslog + 1}" in {letter.origin for letter in as_block.dead}
