"""Small GeoIP databases built by the tests themselves (MMDB files with `mmdb_writer`, ASN ranges as CSV), laid
out as `soc geoip update` installs the real packages, so results never depend on the downloaded data."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from collectors.geoip import ASN_FILES, ASN_PACKAGE, COUNTRY_FILE, COUNTRY_PACKAGE, CURRENT

# ip-location-db's shape: {"country_code": ...}. The private and documentation ranges are in the file on
# purpose (the real database answers for 203.0.113.0/24 too): enrichment must not use them.
COUNTRIES: dict[str, dict[str, Any]] = {
    "81.2.69.0/24": {"country_code": "GB"},
    "200.160.0.0/20": {"country_code": "BR"},
    "2a00:1450::/32": {"country_code": "IE"},
    "10.0.0.0/8": {"country_code": "XX"},
    "203.0.113.0/24": {"country_code": "AU"},
    # MaxMind's / DB-IP's shape, with a name and a continent
    "5.9.0.0/16": {"country": {"iso_code": "DE", "names": {"en": "Germany"}}, "continent": {"code": "EU"}},
}
# start, end (inclusive), AS number, organisation
ASNS: list[tuple[str, str, int, str]] = [
    ("81.2.64.0", "81.2.127.255", 20712, "Andrews & Arnold Ltd"),
    ("200.160.0.0", "200.160.15.255", 22548, "Núcleo de Inf. e Coord. do Ponto BR"),
    ("10.0.0.0", "10.255.255.255", 64512, "private, must never be used"),
    ("2a00:1450::", "2a00:1450:ffff:ffff:ffff:ffff:ffff:ffff", 15169, "Google LLC"),
]


def write_country_mmdb(path: Path, networks: dict[str, dict[str, Any]] = COUNTRIES) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="test-country",
                        description="CitySOC test data")
    for network, record in networks.items():
        writer.insert_network(IPSet([network]), record)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def write_asn_mmdb(path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="test-asn", description="CitySOC test")
    for start, end, number, name in ASNS:
        for network in ipaddress.summarize_address_range(ipaddress.ip_address(start), ipaddress.ip_address(end)):
            writer.insert_network(IPSet([str(network)]), {"autonomous_system_number": MmdbU32(number),
                                                          "autonomous_system_organization": name})
    path.parent.mkdir(parents=True, exist_ok=True)
    writer.to_db_file(str(path))
    return path


def write_asn_csv(folder: Path) -> list[Path]:
    """The `-num` CSV files of the ASN package: IPv4 and IPv6 ranges as integers."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: folder / name for name in ASN_FILES}
    for version, name in ((4, ASN_FILES[0]), (6, ASN_FILES[1])):
        lines = [f'{int(ipaddress.ip_address(start))},{int(ipaddress.ip_address(end))},{number},"{org}"'
                 for start, end, number, org in ASNS if ipaddress.ip_address(start).version == version]
        files[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(files.values())


def install_test_database(directory: Path, *, version: str = "2.3.2026061719") -> Path:
    """A GeoIP folder as `soc geoip update` leaves it, holding the test data; returns `directory`."""
    root = directory / "v-test"
    for package, licence in ((COUNTRY_PACKAGE, "CC0-1.0"), (ASN_PACKAGE, "CC-BY-4.0")):
        folder = root / "node_modules" / package
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "package.json").write_text(json.dumps({"name": package, "version": version, "license": licence}))
    write_country_mmdb(root / "node_modules" / COUNTRY_PACKAGE / COUNTRY_FILE)
    write_asn_csv(root / "node_modules" / ASN_PACKAGE)
    (root / "installed.json").write_text(json.dumps({"installed_at": "2026-12-06T00:00:00+00:00"}))
    (directory / CURRENT).symlink_to(root.name)
    return directory
