"""Real clients no one here wrote, against a running `soc collect`: logger, rsyslogd and curl.

rsyslogd runs with its own configuration in a temporary folder: an `imfile` input the test writes to,
forwarded by the rsyslog snippet `citysoc.onboarding` gives partners (omfwd over TCP, omfwd over TLS
with gtls and a client certificate, omrelp plain and over TLS). Each test finds its events where they
land (the spool, or the store once a drainer runs) under the tenant the sender's network or credential
says, whatever the events themselves claim. Missing clients skip locally and fail under CI=true
(`make setup` installs them from Debian as root).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citysoc.onboarding import partner_config
from collectors.listeners.tls import ClientCertificate, issue_client_certificate
from tests.collectors.intake_helpers import (
    DEADLINE,
    Collector,
    Landed,
    SourceSpec,
    landed,
    landed_with,
    register,
    wait_for,
)
from tests.conftest import require

pytestmark = pytest.mark.slow
RSYSLOG_MODULES = Path("/usr/lib/x86_64-linux-gnu/rsyslog")
LISTENERS = ("syslog-udp", "syslog-tcp", "syslog-tls", "relp", "relp-tls", "http")
HOSPITAL_ACCOUNT, SCHOOL_ACCOUNT = "111122223333", "999988887777"
HOSPITAL, SCHOOL = "northgate-hospital/cloudtrail push", "harbour-school/cloudtrail push"  # http sources


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        require(program, f"{program} is not installed (Debian package {package}; `make setup` as root installs it)")
    return str(path)


def need_module(module: str, package: str) -> None:
    need("rsyslogd", "rsyslog")
    if not any((folder / f"{module}.so").exists() for folder in (RSYSLOG_MODULES, Path("/usr/lib/rsyslog"))):
        require(module, f"rsyslog's {module} module is missing (Debian package {package})")


def probe(what: str) -> str:
    return f"{what}-{uuid.uuid4().hex[:10]}"


@dataclass
class Intake:
    collector: Collector
    home: Path
    client: ClientCertificate
    client_files: tuple[str, str]
    tokens: dict[str, str]  # the http sources' bearer tokens, by tenant/name

    def port(self, kind: str) -> int:
        return self.collector.address(kind)[1]

    def arrived(self, marker: str, count: int = 1) -> list[Landed]:
        return wait_for(lambda: len(found := landed_with(self.home, marker)) >= count and found,
                        what=f"{count} event(s) with {marker}")


@pytest.fixture(scope="module")
def intake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Intake]:
    home = tmp_path_factory.mktemp("soc-home")
    client = issue_client_certificate(home / "tls", common_name="harbour-school edge firewall")
    files = home.parent / "partner"
    files.mkdir()
    (files / "client.pem").write_bytes(client.certificate_pem)
    (files / "client-key.pem").write_bytes(client.key_pem)
    tokens = register(home, [
        SourceSpec("riverside-council", "edge syslog", "syslog", ("udp", "tcp", "relp"), ("127.0.0.1",)),
        SourceSpec("harbour-school", "edge firewall", "syslog", ("tls", "relp"),
                   certificate_sha256=client.fingerprint),
        SourceSpec("northgate-hospital", "cloudtrail push", "aws.cloudtrail", ("http",),
                   cloud_accounts=(HOSPITAL_ACCOUNT,), datasets=("aws.cloudtrail",)),
        SourceSpec("harbour-school", "cloudtrail push", "aws.cloudtrail", ("http",),
                   cloud_accounts=(SCHOOL_ACCOUNT,), datasets=("aws.cloudtrail",)),
    ])
    collector = Collector(home, [arg for kind in LISTENERS for arg in (f"--{kind}", "127.0.0.1:0")]).start()
    try:
        yield Intake(collector, home, client, (str(files / "client.pem"), str(files / "client-key.pem")), tokens)
    finally:
        assert collector.stop() == 0, collector.transcript()
    errors = [entry for entry in collector.logs if entry.get("level") in ("error", "critical")
              or entry.get("event") == "(not JSON)"]
    assert errors == [], collector.transcript()


# --- logger ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("framing", [["-d"], ["-T"], ["-T", "--octet-count"]], ids=["udp", "tcp", "tcp-octets"])
def test_logger_reaches_the_intake_under_the_tenant_of_its_network(intake: Intake, framing: list[str]) -> None:
    logger = need("logger", "bsdutils")
    marker = probe("logger")
    port = intake.port("syslog-udp" if framing == ["-d"] else "syslog-tcp")
    subprocess.run([logger, "-n", "127.0.0.1", "-P", str(port), *framing, "-t", "sshd", "-p", "auth.warning",
                    f"Failed password for invalid user {marker} from 198.51.100.7 port 52814 ssh2"],
                   check=True, timeout=DEADLINE)
    assert {item.tenant for item in intake.arrived(marker)} == {"riverside-council"}


# --- rsyslogd ------------------------------------------------------------------------------------------------

class Rsyslog:
    """rsyslogd in the foreground with its own configuration: an imfile input forwarded by `actions`."""

    def __init__(self, folder: Path, actions: str, *, template: str = "") -> None:
        # a snippet's module loads belong at the top, its actions in the test's ruleset
        modules = "\n".join(line for line in actions.splitlines() if line.startswith("module("))
        actions = "\n".join(line for line in actions.splitlines() if not line.startswith("module("))
        self.folder = folder
        self.input = folder / "in.log"
        self.config = folder / "rsyslog.conf"
        (folder / "work").mkdir(parents=True)
        self.input.write_text("")
        self.config.write_text(
            f'global(workDirectory="{folder / "work"}")\n'
            'module(load="imfile")\n'
            f"{modules}\n{template}\n"
            f'input(type="imfile" File="{self.input}" Tag="probe-app:" ruleset="forward")\n'
            f'ruleset(name="forward") {{\n{actions}\n}}\n')
        self.process: subprocess.Popen[bytes] | None = None

    def check(self) -> None:
        result = subprocess.run([need("rsyslogd", "rsyslog"), "-N1", "-f", str(self.config)], capture_output=True,
                                text=True, timeout=DEADLINE)
        assert result.returncode == 0, f"{self.config.read_text()}\n{result.stderr}"

    def __enter__(self) -> Rsyslog:
        self.check()
        self.process = subprocess.Popen([need("rsyslogd", "rsyslog"), "-n", "-f", str(self.config),
                                         "-i", str(self.folder / "rsyslogd.pid")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def write(self, *lines: str) -> None:
        with self.input.open("a") as file:
            file.write("".join(f"{line}\n" for line in lines))

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=DEADLINE)


def test_rsyslog_forwards_over_tcp_with_the_onboarding_snippet(intake: Intake, tmp_path: Path) -> None:
    need_module("imfile", "rsyslog")
    snippet = partner_config("syslog-tcp", host="127.0.0.1", port=intake.port("syslog-tcp")).rsyslog
    marker = probe("omfwd-tcp")
    with Rsyslog(tmp_path, snippet or "") as rsyslog:
        rsyslog.write(f"{marker} one", f"{marker} two")
        arrived = intake.arrived(marker, 2)
    assert {item.tenant for item in arrived} == {"riverside-council"}


def test_rsyslog_forwards_over_tls_and_its_client_certificate_decides_the_tenant(
        intake: Intake, tmp_path: Path) -> None:
    need_module("lmnsd_gtls", "rsyslog-gnutls")
    certificate, key = intake.client_files
    snippet = partner_config("syslog-tls", host="127.0.0.1", port=intake.port("syslog-tls"), server_name="localhost",
                             ca_file=str(intake.home / "tls" / "ca.pem"), certificate_file=certificate,
                             key_file=key).rsyslog
    marker = probe("omfwd-tls")
    with Rsyslog(tmp_path, snippet or "") as rsyslog:
        rsyslog.write(f"{marker} over TLS")
        arrived = intake.arrived(marker)
    # the same loopback address is the council's network, but TLS with the school's certificate is the school's
    assert {item.tenant for item in arrived} == {"harbour-school"}


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_rsyslog_forwards_over_relp(intake: Intake, tmp_path: Path, tls: bool) -> None:
    need_module("omrelp", "rsyslog-relp")
    certificate, key = intake.client_files
    options = {"ca_file": str(intake.home / "tls" / "ca.pem"), "certificate_file": certificate, "key_file": key,
               "server_name": "localhost"} if tls else {}
    snippet = partner_config("syslog-relp", host="127.0.0.1", port=intake.port("relp-tls" if tls else "relp"),
                             **options).rsyslog  # type: ignore[arg-type]
    marker = probe("omrelp")
    with Rsyslog(tmp_path, snippet or "") as rsyslog:
        rsyslog.write(*[f"{marker} {n}" for n in range(20)])
        arrived = intake.arrived(marker, 20)
    assert len({item.text for item in arrived}) == 20
    assert {item.tenant for item in arrived} == {"harbour-school" if tls else "riverside-council"}


def test_a_spoofed_hostname_does_not_move_events_to_another_tenant(intake: Intake, tmp_path: Path) -> None:
    need_module("imfile", "rsyslog")
    spoof = ('template(name="spoof" type="string" '
             'string="<38>%TIMESTAMP% fw01.harbour-school.example %syslogtag% %msg%\\n")')
    marker = probe("spoofed")
    action = (f'action(type="omfwd" target="127.0.0.1" port="{intake.port("syslog-tcp")}" protocol="tcp" '
              'template="spoof")')
    with Rsyslog(tmp_path, action, template=spoof) as rsyslog:
        rsyslog.write(f"{marker} organization.id=harbour-school tenant=harbour-school")
        arrived = intake.arrived(marker)
    assert "fw01.harbour-school.example" in arrived[0].text
    assert {item.tenant for item in arrived} == {"riverside-council"}


@pytest.mark.parametrize("transport", ["udp", "relp"])
def test_a_sender_outside_every_network_is_refused_and_filed_nowhere(intake: Intake, tmp_path: Path,
                                                                     transport: str) -> None:
    need_module("omrelp" if transport == "relp" else "imfile", "rsyslog-relp" if transport == "relp" else "rsyslog")
    stranger = "127.0.0.3"  # loopback, but no source's network
    if transport == "udp":
        action = (f'action(type="omfwd" target="127.0.0.1" port="{intake.port("syslog-udp")}" protocol="udp" '
                  f'Address="{stranger}")')
    else:
        action = (f'module(load="omrelp")\naction(type="omrelp" target="127.0.0.1" port="{intake.port("relp")}" '
                  f'localClientIp="{stranger}")')
    marker = probe(f"stranger-{transport}")
    with Rsyslog(tmp_path, action) as rsyslog:
        rsyslog.write(f"{marker} from outside")
        refusal = intake.collector.wait_log("sender refused", peer=stranger, transport=transport)
    assert "no source of any member organisation accepts" in refusal["reason"]
    assert landed_with(intake.home, marker) == []


# --- curl ----------------------------------------------------------------------------------------------------

def trail(event_id: str, account: str) -> dict[str, object]:
    return {"eventVersion": "1.08", "eventTime": "2026-01-05T10:00:00Z", "eventSource": "signin.amazonaws.com",
            "eventName": "ConsoleLogin", "eventID": event_id, "eventType": "AwsConsoleSignIn",
            "recipientAccountId": account, "awsRegion": "eu-west-2", "sourceIPAddress": "198.51.100.7",
            "userIdentity": {"type": "IAMUser", "accountId": account, "userName": "alice",
                             "arn": f"arn:aws:iam::{account}:user/alice"},
            "responseElements": {"ConsoleLogin": "Failure"}, "errorMessage": "Failed authentication"}


def curl(intake: Intake, folder: Path, token: str, *records: dict[str, object]) -> tuple[int, dict[str, object]]:
    """The onboarding curl line, run as given (with the status code written out)."""
    need("curl", "curl")
    (folder / "events.ndjson").write_text("".join(json.dumps(record) + "\n" for record in records))
    line = partner_config("http", host="127.0.0.1", port=intake.port("http"), token=token).curl or ""
    command = [*shlex.split(line.splitlines()[0]), "--write-out", "\n%{http_code}"]
    result = subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=DEADLINE)
    body, _, status = result.stdout.rpartition("\n")
    return int(status), json.loads(body)


def test_curl_posts_ndjson_with_its_token_and_it_lands_under_the_tokens_tenant(intake: Intake,
                                                                              tmp_path: Path) -> None:
    marker = probe("curl")
    status, answer = curl(intake, tmp_path, intake.tokens[HOSPITAL], trail(f"{marker}-1", HOSPITAL_ACCOUNT),
                          trail(f"{marker}-2", HOSPITAL_ACCOUNT))
    assert (status, answer["accepted"]) == (200, 2)
    assert {item.tenant for item in intake.arrived(marker, 2)} == {"northgate-hospital"}


def test_crossing_tenants_over_http_is_refused(intake: Intake, tmp_path: Path) -> None:
    marker = probe("cross")
    # the school's token carrying the hospital's account: not the school's account, so not the school's event
    status, answer = curl(intake, tmp_path, intake.tokens[SCHOOL], trail(f"{marker}-1", HOSPITAL_ACCOUNT))
    assert status == 403 and f"{HOSPITAL_ACCOUNT} is not registered for harbour-school" in str(answer["detail"])
    # the hospital's own token naming the school's account
    status, answer = curl(intake, tmp_path, intake.tokens[HOSPITAL], trail(f"{marker}-2", SCHOOL_ACCOUNT))
    assert status == 403 and SCHOOL_ACCOUNT in str(answer["detail"])
    status, answer = curl(intake, tmp_path, "guessed-token", trail(f"{marker}-3", HOSPITAL_ACCOUNT))
    assert status == 401 and "unknown token" in str(answer["detail"])
    assert landed_with(intake.home, marker) == []


# --- the service's life ---------------------------------------------------------------------------------------

def test_a_source_added_while_running_works_after_sighup_and_sigterm_exits_0(tmp_path: Path) -> None:
    need("curl", "curl")
    home = tmp_path / "home"
    register(home, [SourceSpec("northgate-hospital", "cloudtrail push", "aws.cloudtrail", ("http",),
                               cloud_accounts=(HOSPITAL_ACCOUNT,), datasets=("aws.cloudtrail",))])
    collector = Collector(home, ["--http", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0"]).start()
    try:
        intake = Intake(collector, home, ClientCertificate(b"", b"", ""), ("", ""), {})
        marker = probe("newcomer")
        newcomer = trail(f"{marker}-1", "444455556666")
        assert curl(intake, tmp_path, "eastside-gp-token", newcomer)[0] == 401
        [token] = register(home, [SourceSpec("eastside-gp", "cloudtrail push", "aws.cloudtrail", ("http",),
                                             cloud_accounts=("444455556666",),
                                             datasets=("aws.cloudtrail",))]).values()
        assert collector.process is not None
        collector.process.send_signal(1)  # SIGHUP: reload now
        collector.wait_log("source registry loaded", sources=2)
        assert curl(intake, tmp_path, token, newcomer)[0] == 200
        assert collector.stop() == 0
        collector.wait_log("stopped")
    finally:
        collector.stop()
    assert {item.tenant for item in landed(home) if marker in item.text} == {"eastside-gp"}


# --- onboarding text ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "tls", "client"), [
    ("syslog-udp", False, False), ("syslog-tcp", False, False), ("syslog-tls", True, False),
    ("syslog-tls", True, True), ("syslog-relp", False, False), ("syslog-relp", True, True),
])
def test_every_rsyslog_snippet_passes_rsyslogds_own_config_check(tmp_path: Path, kind: str, tls: bool,
                                                                 client: bool) -> None:
    """As a partner installs it: a file of its own, with the CA and client certificate the intake issued."""
    need_module("omrelp" if "relp" in kind else "lmnsd_gtls" if tls else "imfile",
                "rsyslog-relp" if "relp" in kind else "rsyslog-gnutls")
    issued = issue_client_certificate(tmp_path / "tls", common_name="riverside edge")
    (tmp_path / "client.pem").write_bytes(issued.certificate_pem)
    (tmp_path / "client-key.pem").write_bytes(issued.key_pem)
    options = {"ca_file": str(tmp_path / "tls" / "ca.pem")} if tls else {}
    if client:
        options |= {"certificate_file": str(tmp_path / "client.pem"), "key_file": str(tmp_path / "client-key.pem")}
    config = partner_config(kind, host="intake.citysoc.example", port=6514, name="riverside edge", **options)
    assert config.rsyslog is not None and "intake.citysoc.example" in config.rsyslog
    (tmp_path / "work").mkdir()
    (tmp_path / "rsyslog.conf").write_text(f'global(workDirectory="{tmp_path / "work"}")\n{config.rsyslog}\n')
    result = subprocess.run([need("rsyslogd", "rsyslog"), "-N1", "-f", str(tmp_path / "rsyslog.conf")],
                            capture_output=True, text=True, timeout=DEADLINE)
    assert result.returncode == 0, f"{config.rsyslog}\n{result.stderr}"
    assert "error" not in result.stderr.lower(), result.stderr
