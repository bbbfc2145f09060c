"""Authentication lines as Debian, Ubuntu, RHEL/CentOS, Alpine (busybox, Dropbear) and FreeBSD write them.

Every failure must carry event.outcome=failure, event.category=[authentication], the user and the remote
source, whatever the daemon, the syslog daemon and the distribution; the brute-force and spraying rules
group failures by source.ip and count user.name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore
from collectors import ParserOptions, RawRecord, SyslogParser
from collectors.columns import table_docs
from collectors.ingest import ingest_files

NOW = datetime(2026, 3, 12, 11, 0, tzinfo=UTC)

# (distribution, line, user.name, source.ip, source.domain)
FAILURES: list[tuple[str, str, str | None, str | None, str | None]] = [
    ("debian", "Mar 12 10:01:02 deb12 sshd[1201]: Failed password for root from 198.51.100.20 port 51234 ssh2",
     "root", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:02 deb12 sshd[1201]: Failed password for invalid user oracle from 198.51.100.20 port "
     "51236 ssh2", "oracle", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:03 deb12 sshd[1201]: Invalid user oracle from 198.51.100.20 port 51236",
     "oracle", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:03 deb12 sshd[1201]: Connection closed by invalid user oracle 198.51.100.20 port 51236 "
     "[preauth]", "oracle", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:04 deb12 sshd[1201]: Disconnected from authenticating user root 198.51.100.20 port "
     "51234 [preauth]", "root", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:05 deb12 sshd[1201]: pam_unix(sshd:auth): authentication failure; logname= uid=0 "
     "euid=0 tty=ssh ruser= rhost=198.51.100.20  user=root", "root", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:06 deb12 sshd[1201]: message repeated 2 times: [ Failed password for root from "
     "198.51.100.20 port 51234 ssh2]", "root", "198.51.100.20", None),
    ("debian", "Mar 12 10:01:07 deb13 sshd-session[1202]: Failed publickey for git from 2001:db8::20 port 51300 ssh2: "
     "ED25519 SHA256:Xyz", "git", "2001:db8::20", None),
    ("debian", "Mar 12 10:02:00 deb12 su[1300]: pam_unix(su:auth): authentication failure; logname=alice uid=1000 "
     "euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root", "root", None, None),
    ("debian", "Mar 12 10:02:02 deb12 su[1300]: FAILED SU (to root) alice on pts/0", "root", None, None),
    ("debian", "Mar 12 10:02:02 deb12 su[1300]: pam_authenticate: Authentication failure", None, None, None),
    ("debian", "Mar 12 10:03:00 deb12 sudo: pam_unix(sudo:auth): authentication failure; logname=alice uid=1000 "
     "euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=alice", "alice", None, None),
    ("debian", "Mar 12 10:03:05 deb12 sudo:    alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice "
     "; USER=root ; COMMAND=/usr/bin/apt update", "alice", None, None),
    ("debian", "Mar 12 10:04:00 deb12 login[900]: FAILED LOGIN 1 FROM tty1 FOR root, Authentication failure",
     "root", None, None),
    ("debian", "Mar 12 10:04:01 deb12 login[901]: FAILED LOGIN 1 FROM 198.51.100.30 FOR admin, Authentication "
     "failure", "admin", "198.51.100.30", None),
    ("ubuntu", "2024-03-12T10:01:02.123456+00:00 ubuntu sshd[1201]: Failed password for invalid user admin from "
     "198.51.100.21 port 40000 ssh2", "admin", "198.51.100.21", None),
    ("ubuntu", "<38>1 2024-03-12T10:01:02.123456+00:00 ubuntu sshd 1201 - [timeQuality tzKnown=\"1\" isSynced=\"1\"] "
     "Failed password for root from 198.51.100.22 port 40001 ssh2", "root", "198.51.100.22", None),
    ("rhel", "<86>Mar 12 10:01:02 rhel9 sshd[2201]: Failed password for root from 198.51.100.40 port 52000 ssh2",
     "root", "198.51.100.40", None),
    ("rhel", "Mar 12 10:01:02 rhel9 sshd[2201]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 "
     "tty=ssh ruser= rhost=host-40.example.net  user=root", "root", None, "host-40.example.net"),
    ("rhel", "Mar 12 10:01:02 centos4 sshd(pam_unix)[2201]: authentication failure; logname= uid=0 euid=0 "
     "tty=NODEVssh ruser= rhost=198.51.100.43  user=root", "root", "198.51.100.43", None),
    ("rhel", "Mar 12 10:01:02 centos4 sshd(pam_unix)[2201]: 2 more authentication failures; logname= uid=0 euid=0 "
     "tty=NODEVssh ruser= rhost=198.51.100.43  user=root", "root", "198.51.100.43", None),
    ("rhel", "Mar 12 10:01:02 centos5 sshd[2201]: Failed password for illegal user test from 198.51.100.41 port "
     "52001 ssh2", "test", "198.51.100.41", None),
    ("rhel", "Mar 12 10:03:00 rhel9 sudo[3000]:   alice : 1 incorrect password attempt ; TTY=pts/0 ; "
     "PWD=/home/alice ; USER=root ; COMMAND=/bin/su", "alice", None, None),
    ("rhel", "Mar 12 10:02:00 rhel9 su[1300]: pam_unix(su-l:auth): authentication failure; logname=alice uid=1000 "
     "euid=0 tty=pts/0 ruser=alice rhost=  user=root", "root", None, None),
    ("rhel", "Mar 12 10:01:09 rhel9 sshd[2209]: error: maximum authentication attempts exceeded for root from "
     "198.51.100.44 port 52010 ssh2 [preauth]", "root", "198.51.100.44", None),
    ("rhel", "Mar 12 10:01:10 rhel9 sshd[2210]: User root from 198.51.100.45 not allowed because not listed in "
     "AllowUsers", "root", "198.51.100.45", None),
    ("alpine", "Mar 12 10:01:02 alpine authpriv.warn sshd[801]: Failed password for root from 198.51.100.50 port "
     "40100 ssh2", "root", "198.51.100.50", None),
    ("alpine", "Mar 12 10:01:02 alpine authpriv.warn dropbear[802]: Bad password attempt for 'root' from "
     "198.51.100.51:40101", "root", "198.51.100.51", None),
    ("alpine", "Mar 12 10:01:03 alpine authpriv.info dropbear[802]: Login attempt for nonexistent user 'admin' from "
     "198.51.100.51:40102", "admin", "198.51.100.51", None),
    ("alpine", "Mar 12 10:04:00 alpine auth.warn login[700]: invalid password for 'root' on 'ttyS0'",
     "root", None, None),
    ("alpine", "Mar 12 10:04:01 alpine auth.warn login[701]: invalid password for 'admin' on 'pts/1' from "
     "'198.51.100.52'", "admin", "198.51.100.52", None),
    ("alpine", "Mar 12 10:02:00 alpine auth.notice su: - pts/0 alice:root", "root", None, None),
    ("freebsd", "Mar 12 10:01:02 fbsd sshd[5001]: error: PAM: Authentication error for root from 198.51.100.60",
     "root", "198.51.100.60", None),
    ("freebsd", "Mar 12 10:01:02 fbsd sshd[5001]: error: PAM: Authentication error for illegal user admin from "
     "host-60.example.org", "admin", None, "host-60.example.org"),
    ("freebsd", "Mar 12 10:01:04 fbsd login[600]: 1 LOGIN FAILURE FROM 198.51.100.61, root", "root",
     "198.51.100.61", None),
    ("freebsd", "Mar 12 10:01:05 fbsd su[700]: BAD SU alice to root on /dev/pts/0", "root", None, None),
    ("freebsd", "<38>1 2024-03-12T10:01:02.123456+00:00 fbsd sshd 5001 - - Failed password for root from "
     "198.51.100.62 port 2222 ssh2", "root", "198.51.100.62", None),
    ("unix_chkpwd", "Mar 12 10:05:00 deb12 unix_chkpwd[1400]: password check failed for user (alice)",
     "alice", None, None),
]

SUCCESSES = [
    "Mar 12 10:01:02 deb12 sshd[1201]: Accepted publickey for alice from 198.51.100.20 port 51234 ssh2: RSA "
    "SHA256:abc",
    "Mar 12 10:01:02 alpine authpriv.info dropbear[802]: Password auth succeeded for 'root' from 198.51.100.51:40101",
    "Mar 12 10:02:02 deb12 su[1300]: (to root) alice on pts/0",
    "Mar 12 10:02:02 alpine auth.notice su: + pts/0 alice:root",
    "Mar 12 10:04:00 deb12 login[900]: LOGIN ON tty1 BY alice",
]


def parse(*lines: str) -> list[dict[str, Any]]:
    records = [RawRecord(line.encode(), f"line {n}", NOW) for n, line in enumerate(lines)]
    batch = SyslogParser(ParserOptions(year=2024)).parse_records(records, tenant="council", source="syslog")
    assert batch.dead == []
    return [doc for table in batch.tables.values() for doc in table_docs(table)]


@pytest.mark.parametrize(("distribution", "line", "user", "ip", "domain"), FAILURES,
                         ids=[f"{d}-{n}" for n, (d, *_rest) in enumerate(FAILURES)])
def test_every_authentication_failure_has_outcome_user_and_source(distribution: str, line: str, user: str | None,
                                                                   ip: str | None, domain: str | None) -> None:
    (doc,) = parse(line)
    assert doc["event"]["dataset"] == "system.auth", distribution
    assert doc["event"]["outcome"] == "failure"
    assert doc["event"]["category"] == ["authentication"]
    assert doc.get("user", {}).get("name") == user
    source = doc.get("source", {})
    assert (source.get("ip"), source.get("domain")) == (ip, domain)
    if user:
        assert user in doc["related"]["user"]
    if ip:
        assert doc["related"]["ip"] == [ip]


@pytest.mark.parametrize("line", SUCCESSES)
def test_successful_logins_are_successes(line: str) -> None:
    (doc,) = parse(line)
    assert doc["event"]["outcome"] == "success" and doc["user"]["name"] in ("alice", "root")


def test_a_batch_of_every_format_at_once_matches_each_alone() -> None:
    lines = [line for _, line, *_ in FAILURES] + SUCCESSES
    together = parse(*lines)
    alone = [parse(line)[0] for line in lines]
    assert [doc["event"]["original"] for doc in together] == lines
    for both, single in zip(together, alone, strict=True):
        assert {k: v for k, v in both.items() if k != "event"} == {k: v for k, v in single.items() if k != "event"}


def test_process_name_and_facility_of_the_older_and_busybox_forms() -> None:
    pam, busybox = parse(FAILURES[19][1], FAILURES[26][1])
    assert (pam["process"]["name"], pam["log"]["syslog"]["appname"]) == ("sshd", "sshd(pam_unix)")
    assert busybox["log"]["syslog"]["facility"] == {"code": 10, "name": "authpriv"}
    assert busybox["log"]["syslog"]["severity"] == {"code": 4, "name": "Warning"}
    assert busybox["host"]["name"] == "alpine"


def test_rfc3164_tags_real_daemons_write() -> None:
    restart, kernel, postfix = parse("Mar 12 10:00:00 gw syslogd 1.4.1: restart.",
                                     "Mar 12 10:00:01 gw kernel: [ 12.345] eth0: link up",
                                     "Mar 12 10:00:02 mx postfix/smtpd[4321]: connect from unknown[203.0.113.7]")
    assert (restart["process"]["name"], restart["message"]) == ("syslogd", "1.4.1: restart.")
    assert (kernel["process"]["name"], kernel["message"]) == ("kernel", "[ 12.345] eth0: link up")
    assert (postfix["process"], postfix["message"]) == ({"name": "postfix/smtpd", "pid": 4321},
                                                        "connect from unknown[203.0.113.7]")


@pytest.mark.slow
def test_brute_force_and_spraying_fire_on_each_distributions_sshd_lines(spark: Any, tmp_path: Path) -> None:
    from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
    from correlator.engine.detection import run_detection

    forms = {  # one attacker per distribution's way of writing the same sshd failure
        "198.51.100.101": "{time:%b %e %H:%M:%S} deb12 sshd[1201]: Failed password for {user} from {ip} port "
                          "5{n:04d} ssh2",
        "198.51.100.102": "<86>{time:%b %e %H:%M:%S} rhel9 sshd[2201]: Failed password for invalid user {user} from "
                          "{ip} port 5{n:04d} ssh2",
        "198.51.100.103": "{time:%b %e %H:%M:%S} alpine authpriv.warn sshd[801]: Failed password for {user} from {ip} "
                          "port 5{n:04d} ssh2",
        "198.51.100.104": "<38>1 {time:%Y-%m-%dT%H:%M:%S}.000000+00:00 fbsd sshd 5001 - - Failed password for {user} "
                          "from {ip} port 5{n:04d} ssh2",
        "198.51.100.105": "{time:%Y-%m-%dT%H:%M:%S}.123456+00:00 ubuntu sshd[9]: Failed password for {user} "
                          "from {ip} port 5{n:04d} ssh2",
    }
    start = datetime(2024, 3, 12, 10, 0, tzinfo=UTC)
    lines = [form.format(time=start + timedelta(seconds=10 * n), user=f"user{n}", ip=ip, n=n).replace("  ", " ")
             for ip, form in forms.items() for n in range(12)]
    path = tmp_path / "auth.log"
    path.write_text("\n".join(lines) + "\n")
    store = ParquetEventStore(tmp_path / "events")
    report = ingest_files(tenant="council", source="syslog", paths=[path], store=store,
                          dead_letters=DeadLetterStore(tmp_path / "deadletter"), year=2024)
    assert (report.stored, report.dead_lettered) == (60, 0)
    rules = RuleCompiler(spark).compile([DEFAULT_RULES_DIR])
    result = run_detection(spark, store=store, alerts_dir=tmp_path / "alerts", rules=rules)
    fired: dict[str, set[str]] = {}
    for alert in result.alerts:
        fired.setdefault(alert["rule"]["title"], set()).update(alert["entities"].get("source.ip", []))
    assert fired["SSH Brute Force From One Source"] == set(forms)
    assert fired["SSH Password Spraying From One Source"] == set(forms)
