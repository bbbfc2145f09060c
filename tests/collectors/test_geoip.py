"""GeoIP enrichment at ingest: known addresses get country and AS from a small database the test builds,
private and reserved ones get nothing, a missing database leaves ingest working, the lake stays readable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import structlog

from citysoc.deadletter import DeadLetterStore
from citysoc.schema import ARROW_SCHEMA
from citysoc.settings import Settings
from citysoc.store import ParquetEventStore
from collectors.base import get_parser
from collectors.drain import Drainer
from collectors.enrich import GeoEnricher
from collectors.geoip import ASN_PACKAGE, COUNTRY_PACKAGE, AsnRanges, GeoDatabase, GeoRecord, routable, status
from collectors.ingest import ingest_files
from collectors.records import RawRecord
from collectors.spool import Spool
from tests.collectors.geoip_helpers import (
    install_test_database,
    write_asn_csv,
    write_asn_mmdb,
    write_country_mmdb,
)
from tests.conftest import REPO, require

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def sshd(address: str, user: str = "alice", second: int = 0) -> str:
    return (f"Dec  1 10:00:{second:02d} web-01 sshd[4{second:03d}]: Accepted password for {user} from {address}"
            " port 50122 ssh2")


def parse(lines: list[str]) -> pa.Table:
    parser = get_parser("syslog")()
    records = [RawRecord(text.encode(), f"test:{n}", NOW) for n, text in enumerate(lines)]
    batch = parser.parse_records(records, tenant="council", source="syslog")
    assert not batch.dead
    return batch.tables["system.auth"]


def geo_rows(table: pa.Table) -> list[tuple[str | None, str | None, int | None, str | None]]:
    return [(row["ip"], row["geo"]["country_iso_code"], row["as"]["number"], row["as"]["organization"]["name"])
            for row in table.column("source").to_pylist()]


@pytest.fixture
def database(tmp_path: Path) -> GeoDatabase:
    country = write_country_mmdb(tmp_path / "country.mmdb")
    return GeoDatabase.open_files(country=country, asn=write_asn_csv(tmp_path / "asn"))


def test_a_batch_gets_country_and_as_of_its_public_addresses_only(database: GeoDatabase) -> None:
    table = parse([sshd("81.2.69.142"), sshd("10.1.2.3", second=1), sshd("200.160.2.3", second=2),
                   sshd("203.0.113.7", second=3), sshd("2a00:1450:4009:80b::200e", second=4),
                   sshd("198.18.0.1", second=5), sshd("8.8.8.8", second=6)])
    enriched = GeoEnricher(database).enrich(table)
    assert enriched.schema == ARROW_SCHEMA
    assert geo_rows(enriched) == [
        ("81.2.69.142", "GB", 20712, "Andrews & Arnold Ltd"),
        ("10.1.2.3", None, None, None),  # private: the test database holds it, enrichment must not use it
        ("200.160.2.3", "BR", 22548, "Núcleo de Inf. e Coord. do Ponto BR"),
        ("203.0.113.7", None, None, None),  # documentation range, also in the database
        ("2a00:1450:4009:80b::200e", "IE", 15169, "Google LLC"),
        ("198.18.0.1", None, None, None),  # benchmarking range
        ("8.8.8.8", None, None, None),  # public, but not in the test database
    ]
    # everything else is untouched
    assert enriched.drop_columns(["source"]).equals(table.drop_columns(["source"]))
    assert pc.struct_field(enriched.column("source"), "port").equals(pc.struct_field(table.column("source"), "port"))


def test_the_cache_looks_each_address_up_once_across_batches(database: GeoDatabase) -> None:
    enricher = GeoEnricher(database)
    first = parse([sshd("81.2.69.142", second=n) for n in range(20)] + [sshd("200.160.2.3", second=30)])
    enricher.enrich(first)
    assert enricher.lookups == 2
    second = enricher.enrich(parse([sshd("81.2.69.142", second=n) for n in range(40, 50)]))
    assert enricher.lookups == 2
    assert {row[1] for row in geo_rows(second)} == {"GB"}
    bounded = GeoEnricher(database, cache_entries=1)
    bounded.enrich(first)
    bounded.enrich(first)
    assert bounded.lookups == 4  # the cache holds one address: the other is looked up each time


def test_values_a_parser_set_are_kept_and_events_without_an_address_pass(database: GeoDatabase) -> None:
    table = parse([sshd("81.2.69.142")])
    source = table.column("source").to_pylist()
    source[0]["geo"]["country_iso_code"] = "FR"
    preset = table.set_column(table.schema.get_field_index("source"), "source",
                              pa.array(source, table.schema.field("source").type))
    assert geo_rows(GeoEnricher(database).enrich(preset)) == [("81.2.69.142", "FR", 20712, "Andrews & Arnold Ltd")]
    no_address = parse(["Dec  1 10:00:00 web-01 sshd[1]: Server listening on 0.0.0.0 port 22."])
    assert GeoEnricher(database).enrich(no_address) is no_address


def test_maxmind_shaped_databases_give_name_continent_and_asn(tmp_path: Path) -> None:
    database = GeoDatabase.open_files(country=write_country_mmdb(tmp_path / "c.mmdb"),
                                      asn=[write_asn_mmdb(tmp_path / "asn.mmdb")])
    assert database.lookup("5.9.1.1") == GeoRecord("DE", "Germany", "EU", None, None)
    assert database.lookup("81.2.69.1") == GeoRecord("GB", None, None, 20712, "Andrews & Arnold Ltd")
    assert database.lookup("::ffff:81.2.69.1") == database.lookup("81.2.69.1")  # IPv4-mapped IPv6
    assert database.lookup("10.0.0.1") is None and database.lookup("not an ip") is None


def test_routable_addresses() -> None:
    assert routable("81.2.69.142") is not None and routable(" 2a00:1450::1 ") is not None
    for address in ("10.0.0.1", "192.168.1.1", "172.16.0.1", "127.0.0.1", "169.254.1.1", "100.64.0.1",
                    "192.0.2.1", "198.51.100.1", "203.0.113.1", "224.0.0.1", "::1", "fe80::1", "fc00::1",
                    "2001:db8::1", "0.0.0.0", "255.255.255.255", "ec2.amazonaws.com", ""):
        assert routable(address) is None, address


def test_asn_ranges_search_inclusive_bounds() -> None:
    ranges = AsnRanges([(100, 199, 1, "one"), (300, 300, 3, "three"), (200, 250, 2, "two")])
    assert [ranges.get(n) for n in (99, 100, 199, 200, 250, 251, 300, 301)] == [
        None, (1, "one"), (1, "one"), (2, "two"), (2, "two"), None, (3, "three"), None]


def test_file_ingest_stores_the_geo_fields(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text("\n".join([sshd("81.2.69.142"), sshd("10.1.2.3", second=1)]) + "\n")
    store = ParquetEventStore(tmp_path / "lake" / "events")
    enricher = GeoEnricher.from_directory(install_test_database(tmp_path / "geoip"))
    report = ingest_files(tenant="council", source="syslog", paths=[log], store=store,
                          dead_letters=DeadLetterStore(tmp_path / "dl"), year=2026, enricher=enricher)
    assert report.stored == 2
    rows = sorted(geo_rows(pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA)))
    assert rows == [("10.1.2.3", None, None, None), ("81.2.69.142", "GB", 20712, "Andrews & Arnold Ltd")]


def test_the_drainer_enriches_what_the_intake_spooled(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append(tenant="council", source="syslog",
                 records=[RawRecord(sshd("200.160.2.3").encode(), "tcp 192.0.2.7:5000", NOW)])
    store = ParquetEventStore(tmp_path / "events")
    enricher = GeoEnricher.from_directory(install_test_database(tmp_path / "geoip"))
    Drainer(spool, store, DeadLetterStore(tmp_path / "dl"), enricher=enricher).run_once()
    spool.close()
    (row,) = geo_rows(pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA))
    assert row == ("200.160.2.3", "BR", 22548, "Núcleo de Inf. e Coord. do Ponto BR")


def test_without_a_database_ingest_works_and_says_so_once(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    log.write_text(sshd("81.2.69.142") + "\n")
    with structlog.testing.capture_logs() as logged:
        enricher = GeoEnricher.from_directory(tmp_path / "no-geoip")
        store = ParquetEventStore(tmp_path / "events")
        for _ in range(2):
            ingest_files(tenant="council", source="syslog", paths=[log], store=store,
                         dead_letters=DeadLetterStore(tmp_path / "dl"), year=2026, enricher=enricher)
    assert not enricher.active and store.stored() == 1
    warnings = [entry for entry in logged if entry["log_level"] == "warning"]
    assert len(warnings) == 1 and "no GeoIP database installed" in warnings[0]["event"]
    assert warnings[0]["fix"].startswith("run `soc geoip update`")
    assert geo_rows(pq.read_table(next(store.events_dir.rglob("*.parquet")), schema=ARROW_SCHEMA)) == [
        ("81.2.69.142", None, None, None)]


def test_an_unreadable_database_is_logged_and_ingest_goes_on(tmp_path: Path) -> None:
    directory = install_test_database(tmp_path / "geoip")
    (directory / "current" / "node_modules" / COUNTRY_PACKAGE / "geo-whois-asn-country.mmdb").write_bytes(b"junk")
    with structlog.testing.capture_logs() as logged:
        enricher = GeoEnricher.from_directory(directory)
    assert not enricher.active
    assert "GeoIP database unreadable" in logged[0]["event"] and "junk" not in logged[0]["error"]
    table = parse([sshd("81.2.69.142")])
    assert enricher.enrich(table) is table


def test_status_reports_versions_dates_and_licences(tmp_path: Path) -> None:
    rows = {row.name: row for row in status(install_test_database(tmp_path / "geoip"))}
    assert rows[COUNTRY_PACKAGE].version == "2.3.2026061719" and rows[COUNTRY_PACKAGE].data_date == "2026-06-17"
    assert rows[COUNTRY_PACKAGE].licence == "CC0-1.0" and "CC BY 4.0" in rows[ASN_PACKAGE].data_licence
    assert rows[ASN_PACKAGE].installed == "2026-12-06T00:00:00+00:00"
    assert all(row.version is None for row in status(tmp_path / "nothing"))


def test_the_installed_database_answers_for_well_known_public_addresses() -> None:
    """The database `make setup` installs (`soc geoip update` into $SOC_HOME/geoip): Google's public resolver has
    been in AS15169 for over a decade; no documentation or private range is asked."""
    directory = Settings().geoip_path
    database = GeoDatabase.open_installed(directory if directory.is_absolute() else REPO / directory)
    if database is None:
        require("the GeoIP database", f"no GeoIP database in {directory}: run `make setup` or `soc geoip update`")
    assert database is not None
    record = database.lookup("8.8.8.8")
    assert record is not None and record.as_number == 15169 and record.country_iso_code == "US"
    assert database.lookup("10.0.0.1") is None and database.lookup("203.0.113.7") is None
