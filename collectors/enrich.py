"""Enrichment at ingest: `source.geo.*` and `source.as.*` from `source.ip`, per Arrow table of events.

The stage between the parsers and the store (file ingest and the spool's drainer alike), as Elastic's
geoip processor sits in an ingest pipeline and Logstash's geoip filter in a pipeline's filters. A table
is enriched by its distinct addresses: each is looked up once (and remembered across tables, since
many events share few addresses), then the answers are spread over the rows by Arrow's `take`.
Values a parser set itself are kept. Without a database the stage passes tables through untouched, and
says so once in the log.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import structlog

from collectors.geoip import GeoDatabase, GeoIPError, GeoRecord

log = structlog.get_logger(__name__)

CACHE_ENTRIES = 262_144  # distinct addresses remembered; the cache is emptied when full (bounded memory)


class GeoEnricher:
    """Adds GeoIP country and autonomous system to events with a `source.ip`."""

    def __init__(self, database: GeoDatabase | None, *, cache_entries: int = CACHE_ENTRIES) -> None:
        self.database = database
        self.cache_entries = cache_entries
        self._cache: dict[str, GeoRecord | None] = {}
        self.lookups = 0  # addresses looked up in the database (cache misses), for benches and tests

    @classmethod
    def from_directory(cls, directory: Path) -> GeoEnricher:
        """The enricher over the database installed under `directory` (`soc geoip update`); without one (or
        with one that does not read) events are stored without geo, and the log says so once."""
        try:
            database = GeoDatabase.open_installed(directory)
        except GeoIPError as error:
            log.warning("GeoIP database unreadable; events are stored without source.geo/source.as",
                        error=str(error), fix="run `soc geoip update`")
            return cls(None)
        if database is None:
            log.warning("no GeoIP database installed; events are stored without source.geo/source.as",
                        directory=str(directory), fix="run `soc geoip update` (make setup does)")
        return cls(database)

    @property
    def active(self) -> bool:
        return self.database is not None

    def lookup(self, address: str) -> GeoRecord | None:
        """The database's answer for one address, through the cache."""
        try:
            return self._cache[address]
        except KeyError:
            pass
        assert self.database is not None
        record = self.database.lookup(address)
        self.lookups += 1
        if len(self._cache) >= self.cache_entries:
            self._cache.clear()
        self._cache[address] = record
        return record

    def enrich(self, table: pa.Table) -> pa.Table:
        """The table with `source.geo` and `source.as` filled from `source.ip` (`citysoc.schema.ARROW_SCHEMA`)."""
        if self.database is None or table.num_rows == 0:
            return table
        source = table.column("source").combine_chunks()
        parts = _children(source)
        addresses = parts["ip"]
        if addresses.null_count == len(addresses):
            return table
        distinct = pc.unique(addresses).drop_null()
        records = [self.lookup(address) for address in distinct.to_pylist()]
        if not any(records):
            return table
        rows = pc.index_in(addresses, value_set=distinct)
        found = {
            "country_iso_code": [r.country_iso_code if r else None for r in records],
            "country_name": [r.country_name if r else None for r in records],
            "continent_code": [r.continent_code if r else None for r in records],
        }
        geo_type = source.type.field("geo").type
        as_type = source.type.field("as").type
        old_geo = _children(parts["geo"])
        geo = pa.StructArray.from_arrays(
            [pc.coalesce(old_geo[name], pa.array(found[name], pa.string()).take(rows))
             for name in (item.name for item in geo_type)], fields=list(geo_type))
        old_as = _children(parts["as"])
        numbers = pa.array([r.as_number if r else None for r in records], pa.int64()).take(rows)
        names = pa.array([r.as_organization if r else None for r in records], pa.string()).take(rows)
        organization_type = as_type.field("organization").type
        organization = pa.StructArray.from_arrays(
            [pc.coalesce(_children(old_as["organization"])["name"], names)], fields=list(organization_type))
        autonomous = pa.StructArray.from_arrays([pc.coalesce(old_as["number"], numbers), organization],
                                                fields=list(as_type))
        children = [geo if item.name == "geo" else autonomous if item.name == "as" else parts[item.name]
                    for item in source.type]
        mask = source.is_null() if source.null_count else None
        enriched = pa.StructArray.from_arrays(children, fields=list(source.type), mask=mask)
        return table.set_column(table.schema.get_field_index("source"), table.schema.field("source"), enriched)


def _children(array: pa.StructArray) -> dict[str, pa.Array]:
    """A struct array's children by name, sliced as the array is (`flatten` honours offsets)."""
    return {item.name: child for item, child in zip(array.type, array.flatten(), strict=True)}
