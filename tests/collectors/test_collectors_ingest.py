"""`ingest_files` end to end on a real Parquet lake and dead-letter store: counts, replays, paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.schema import ARROW_SCHEMA
from citysoc.store import ParquetEventStore
from collectors import InputPathError, UnknownParserError, get_parser, parser_names
from collectors.ingest import IngestReport, ingest_files


def stores(root: Path) -> tuple[ParquetEventStore, DeadLetterStore]:
    return ParquetEventStore(root / "events"), DeadLetterStore(root / "deadletter")


def parquet_rows(store: ParquetEventStore) -> int:
    return sum(pq.read_metadata(path).num_rows for path in store.events_dir.rglob("*.parquet"))


def test_ingesting_the_same_syslog_file_twice_stores_nothing_new(corpora: Path, soc_home: Path) -> None:
    store, letters = stores(soc_home)
    path = corpora / "loghub" / "OpenSSH_2k.log"
    progress: list[int] = []
    first = ingest_files(tenant="council", source="syslog", paths=[path], store=store, dead_letters=letters,
                         year=2024, batch_size=700, on_progress=progress.append)
    assert (first.files, first.read, first.stored, first.duplicates, first.dead_lettered) == (1, 2000, 2000, 0, 0)
    assert first.stored_by_dataset == {"system.auth": 2000}
    assert progress[-1] == 2000
    files_after_first = sorted(store.events_dir.rglob("*.parquet"))
    assert parquet_rows(store) == 2000

    second = ingest_files(tenant="council", source="syslog", paths=[path], store=store, dead_letters=letters, year=2024)
    assert (second.read, second.stored, second.duplicates) == (2000, 0, 2000)
    assert sorted(store.events_dir.rglob("*.parquet")) == files_after_first
    assert parquet_rows(store) == 2000 == store.stored(tenant="council", dataset="system.auth")
    assert "2000 records read: 0 stored" in second.summary() and "2000 already stored" in second.summary()


def test_identical_repeated_lines_are_both_stored(tmp_path: Path) -> None:
    store, letters = stores(tmp_path)
    line = "Dec 10 06:55:46 LabSZ sshd[24200]: Connection closed by 173.234.31.186 [preauth]"
    path = tmp_path / "auth.log"
    path.write_text(f"{line}\n{line}\n")
    report = ingest_files(tenant="council", source="syslog", paths=[path], store=store, dead_letters=letters,
                          year=2024)
    assert report.stored == 2
    (part,) = store.events_dir.rglob("*.parquet")
    table = pq.read_table(part, schema=ARROW_SCHEMA)
    assert [event["original"] for event in table.column("event").to_pylist()] == [line, line]
    # free text and unique ids are stored plain, keywords with a dictionary (citysoc.schema.PLAIN_ENCODED)
    metadata = pq.read_metadata(part)
    encodings = {metadata.schema.column(i).path: metadata.row_group(0).column(i).encodings
                 for i in range(metadata.num_columns)}
    assert not any("DICTIONARY" in encoding for encoding in encodings["message"] + encodings["event.id"])
    assert any("DICTIONARY" in encoding for encoding in encodings["process.name"])


def test_stratus_folder_then_replay_and_dead_letters(corpora: Path, tmp_path: Path) -> None:
    store, letters = stores(tmp_path / "home")
    folder = tmp_path / "trail"
    shutil.copytree(corpora / "stratus", folder)
    (folder / "broken.json").write_text('{"Records": [{"eventID": "x"')
    (folder / ".hidden.json").write_text("ignored")
    report = ingest_files(tenant="council", source="cloudtrail", paths=[folder], store=store, dead_letters=letters)
    # 35 stratus files, README.md, LICENSE and broken.json; README and LICENSE are not JSON either
    assert report.files == 38
    assert report.stored == report.stored_by_dataset["aws.cloudtrail"] == 310
    assert report.dead_lettered == 3 == letters.count(tenant="council")
    reasons = {letter["origin"].rsplit("/", 1)[-1].split(":")[0]: letter["reason"]
               for letter in letters.list(tenant="council")}
    assert set(reasons) == {"broken.json", "README.md", "LICENSE"}
    assert all(reason.startswith("not JSON") for reason in reasons.values())

    again = ingest_files(tenant="council", source="aws.cloudtrail", paths=[folder], store=store, dead_letters=letters)
    assert (again.stored, again.duplicates) == (0, 310)
    assert letters.count(tenant="council") == 3  # dead letters have stable ids too
    assert parquet_rows(store) == 310


def test_tenants_are_kept_apart(corpora: Path, tmp_path: Path) -> None:
    store, letters = stores(tmp_path)
    path = corpora / "stratus" / "aws.defense-evasion.cloudtrail-stop.json"
    for tenant in ("council", "northgate-hospital"):
        report = ingest_files(tenant=tenant, source="aws.cloudtrail", paths=[path], store=store, dead_letters=letters)
        assert report.stored == 1
    assert store.stored(tenant="northgate-hospital") == 1


def test_missing_path_raises_with_advice(tmp_path: Path) -> None:
    store, letters = stores(tmp_path)
    missing = tmp_path / "nope.log"
    with pytest.raises(InputPathError, match="no such file or directory") as caught:
        ingest_files(tenant="council", source="syslog", paths=[missing], store=store, dead_letters=letters)
    assert caught.value.where == str(missing)
    assert not store.events_dir.exists()


def test_unknown_source_lists_the_known_parsers(tmp_path: Path) -> None:
    with pytest.raises(UnknownParserError,
                       match=r"known parsers: auditd, auditd\.log, aws\.cloudtrail, .*cloudtrail, .*okta\.system"):
        get_parser("winlogbeat")
    assert {"auditd", "auditd.log", "aws.cloudtrail", "cloudtrail", "syslog"} <= set(parser_names())


def test_empty_report_summary() -> None:
    assert IngestReport().summary() == "0 file(s), 0 records read: 0 stored, 0 already stored, 0 dead-lettered"
