"""`soc sources`: onboarding prints what the partner configures (checked by rsyslog itself where it is installed),
credentials are shown once, refusals read as advice, and `list` shows each source's data health.

`soc` runs in this process with `citysoc.cli.main`'s handling of errors (exit 2, advice on stderr); the
installed executable is exercised the same way by tests/test_cli.py."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from citysoc.cli import app
from citysoc.errors import CitySocError
from citysoc.health import HealthStore
from citysoc.onboarding import PARTNER_CERT, PARTNER_KEY

HOST = "intake.soc.example.org"
NG, RS = "northgate-hospital", "riverside-school"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


def soc(home: Path, *args: str, **env: str) -> Run:
    """`soc ARGS` with SOC_HOME=`home`; a CitySocError ends as `citysoc.cli.main` ends it: exit 2, advice."""
    environment = {"SOC_HOME": str(home), "COLUMNS": "200", "SOC_COLLECT_HOST": HOST, **env}
    result = CliRunner().invoke(app, list(args), env=environment)
    if isinstance(result.exception, CitySocError):
        return Run(2, result.stdout, f"{result.stderr}error: {result.exception}\n")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(result.exit_code, result.stdout, result.stderr)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "soc"
    for tenant in (NG, RS):
        assert soc(home, "tenants", "add", tenant).returncode == 0
    return home


def rsyslog_section(output: str) -> str:
    """The rsyslog configuration printed by `soc sources add`: from its heading to the first blank line."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# rsyslog ("))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start + 1:end]) + "\n"


def rsyslog_accepts(config: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """rsyslog's own validation of a configuration (`rsyslogd -N1`)."""
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        pytest.skip("rsyslogd is not installed (Debian: apt-get install rsyslog rsyslog-relp rsyslog-gnutls)")
    path = folder / "60-citysoc.conf"
    path.write_text(config)
    return subprocess.run([rsyslogd, "-N1", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)


def test_a_udp_source_prints_sender_configuration_rsyslog_accepts(home: Path, tmp_path: Path) -> None:
    added = soc(home, "sources", "add", "--tenant", NG, "--kind", "syslog-udp", "--network", "192.0.2.0/24",
                "--network", "198.51.100.7", "dmz firewall")
    assert added.returncode == 0, added.stderr
    assert f'action(type="omfwd" target="{HOST}" port="5514" protocol="udp")' in added.stdout
    assert f'network("{HOST}" port(5514) transport("udp"))' in added.stdout  # syslog-ng
    checked = rsyslog_accepts(rsyslog_section(added.stdout), tmp_path)
    assert checked.returncode == 0, checked.stderr

    tcp = soc(home, "sources", "add", "--tenant", NG, "--kind", "syslog-tcp", "--network", "192.0.2.0/24", "dmz tcp",
              SOC_COLLECT_SYSLOG_TCP_PORT="1601")
    assert 'port="1601" protocol="tcp" TCP_Framing="octet-counted"' in tcp.stdout
    assert rsyslog_accepts(rsyslog_section(tcp.stdout), tmp_path).returncode == 0


def test_an_http_token_is_printed_once_with_the_curl_line(home: Path) -> None:
    added = soc(home, "sources", "add", "--tenant", NG, "--kind", "http", "--parser", "aws.cloudtrail",
                "--account", "111122223333", "--json", "org trail")
    assert added.returncode == 0, added.stderr
    [source] = [orjson.loads(line) for line in added.stdout.splitlines()]
    token = source["token"]
    assert f"Authorization: Bearer {token}" in source["instructions"]
    assert f"http://{HOST}:8514/v1/events" in source["instructions"]

    listed = soc(home, "sources", "list", "--json")
    assert token not in listed.stdout and hashlib.sha256(token.encode()).hexdigest() not in listed.stdout
    [entry] = [orjson.loads(line) for line in listed.stdout.splitlines()]
    assert entry["has_token"] is True and entry["cloud_accounts"] == ["111122223333"]

    again = soc(home, "sources", "token", str(source["id"]))
    assert again.returncode == 0, again.stderr
    new_token = re.search(r"store it now\): (\S+)", again.stdout)
    assert new_token is not None and new_token.group(1) != token


def test_refusals_read_as_advice(home: Path) -> None:
    m365 = soc(home, "sources", "add", "--tenant", NG, "--kind", "m365", "mail")
    assert m365.returncode == 2 and "a m365 source needs tenant_id, client_id, client_secret" in m365.stderr
    assert soc(home, "sources", "add", "--tenant", NG, "--kind", "syslog-udp", "--network", "10.1.0.0/16",
               "dmz").returncode == 0
    overlap = soc(home, "sources", "add", "--tenant", RS, "--kind", "syslog-udp", "--network", "10.1.2.0/24", "lab")
    assert overlap.returncode == 2 and "overlaps 10.1.0.0/16, claimed by northgate-hospital/dmz" in overlap.stderr
    bad = soc(home, "sources", "add", "--tenant", RS, "--kind", "syslog-udp", "--network", "10.1.2/33", "lab")
    assert bad.returncode == 2 and "is not a network" in bad.stderr
    netflow = soc(home, "sources", "add", "--tenant", RS, "--kind", "netflow", "edge")
    assert netflow.returncode == 2 and "unknown source kind 'netflow'" in netflow.stderr


def test_a_tls_source_pins_the_client_certificate_file(home: Path, tmp_path: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    key, cert, csr = tmp_path / "client.key", tmp_path / "client.pem", tmp_path / "client.csr"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-subj", "/CN=edge.riverside.example", "-days", "2", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    subprocess.run([openssl, "req", "-new", "-key", str(key), "-subj", "/CN=edge", "-out", str(csr)], check=True,
                   capture_output=True)
    fingerprint = subprocess.run([openssl, "x509", "-in", str(cert), "-noout", "-fingerprint", "-sha256"],
                                 check=True, capture_output=True, text=True).stdout
    expected = fingerprint.split("=", 1)[1].strip().replace(":", "").lower()

    refused = soc(home, "sources", "add", "--tenant", RS, "--kind", "syslog-tls", "--client-cert", str(csr), "edge")
    assert refused.returncode == 2 and "is a certificate request" in refused.stderr
    added = soc(home, "sources", "add", "--tenant", RS, "--kind", "syslog-tls", "--client-cert", str(cert), "edge",
                SOC_COLLECT_CA_FILE=str(cert))
    assert added.returncode == 0, added.stderr
    [source] = [orjson.loads(line) for line in soc(home, "sources", "list", "--json").stdout.splitlines()]
    assert source["certificate_sha256"] == expected and source["transports"] == ["relp", "tls"]

    # the printed configuration, with the partner's own files in place of the placeholders, is valid rsyslog
    config = rsyslog_section(added.stdout).replace(PARTNER_CERT, str(cert)).replace(PARTNER_KEY, str(key))
    assert f'streamDriver.CAFile="{cert}"' in config and f'streamDriver.CertFile="{cert}"' in config
    checked = rsyslog_accepts(config, tmp_path)
    assert checked.returncode == 0, checked.stderr
    relp = soc(home, "sources", "add", "--tenant", RS, "--kind", "syslog-relp", "--network", "203.0.113.0/24",
               "relay")
    assert relp.returncode == 0 and 'module(load="omrelp")' in relp.stdout
    assert rsyslog_accepts(rsyslog_section(relp.stdout), tmp_path).returncode == 0


def last_hour(counts: dict[int, int]) -> list[int]:
    """`events_per_minute` with `counts[n]` events n minutes ago (0: the current minute), oldest first."""
    return [counts.get(minutes_ago, 0) for minutes_ago in range(59, -1, -1)]


def test_list_shows_each_sources_data_health(home: Path) -> None:
    added = soc(home, "sources", "add", "--tenant", NG, "--kind", "syslog-udp", "--network", "192.0.2.0/24",
                "--json", "dmz")
    source_id = orjson.loads(added.stdout)["id"]
    now = datetime.now(UTC)
    HealthStore(home / "health").record(source_id=source_id, tenant=NG, events=93, dead=7, received=now,
                                        last_dead_reason="no syslog header", last_dead_origin="udp 192.0.2.7:514")
    HealthStore(home / "health").record(source_id=source_id, tenant=NG, events=5, dead=0,
                                        received=now - timedelta(minutes=30))

    table = soc(home, "sources", "list")
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stdout.splitlines() if f"#{source_id} {NG}/dmz" in line)
    assert " 98 " in row and "6.7%" in row and "no syslog header" in row
    [listed] = [orjson.loads(line) for line in soc(home, "sources", "list", "--json").stdout.splitlines()]
    # The list counts the hour before its own clock, which may have passed a minute boundary since `now`.
    turned = int(datetime.now(UTC).timestamp() // 60) - int(now.timestamp() // 60)
    assert listed["health"]["events_per_minute"] in [last_hour({lag: 93, lag + 30: 5}) for lag in range(turned + 1)]

    removed = soc(home, "sources", "remove", str(source_id))
    assert removed.returncode == 0 and "removed" in removed.stdout
    assert soc(home, "sources", "list", "--json").stdout == ""


def test_pushing_providers_are_told_where_to_point(home: Path) -> None:
    """GitHub's Splunk stream, a Pub/Sub push subscription (with the push identity the city SOC registered) and
    an Okta event hook each get their own lines beside the curl line."""
    github = soc(home, "sources", "add", "--tenant", NG, "--kind", "http", "--parser", "github.audit", "--json",
                 "github stream")
    assert github.returncode == 0, github.stderr
    [source] = [orjson.loads(line) for line in github.stdout.splitlines()]
    assert f"Domain: {HOST}   Port: 8514   Token: {source['token']}" in source["instructions"]
    assert "Splunk's HTTP Event Collector at /services/collector" in source["instructions"]
    pushed = soc(home, "sources", "add", "--tenant", NG, "--kind", "http", "--parser", "gcp.audit",
                 "--setting", "push_service_account=citysoc-push@ng-prod.iam.gserviceaccount.com",
                 "--setting", f"push_audience=http://{HOST}:8514/v1/events?source=gcp.audit", "--json", "gcp push")
    assert pushed.returncode == 0, pushed.stderr
    [source] = [orjson.loads(line) for line in pushed.stdout.splitlines()]
    assert ("service account: citysoc-push@ng-prod.iam.gserviceaccount.com   "
            f"audience: http://{HOST}:8514/v1/events?source=gcp.audit") in source["instructions"]
    okta = soc(home, "sources", "add", "--tenant", NG, "--kind", "http", "--parser", "okta.system", "--json", "okta")
    [source] = [orjson.loads(line) for line in okta.stdout.splitlines()]
    assert f"value: Bearer {source['token']}" in source["instructions"]
