"""A city scenario for the demo and tests: baseline traffic of three member organisations plus attacks.

Everything is generated from a seed and a fixed start time, so the same scenario always produces the
same files (and so the same event ids: replaying it stores nothing new). Output is raw logs in the
formats real sources deliver, which then go through the real collectors:

- CloudTrail: gzipped `{"Records": [...]}` files named and laid out as S3 delivery does.
- syslog: RFC 5424 (one hospital server), RFC 3164 with PRI, and the common file form without PRI
  or year (`/var/log/auth.log` as rsyslog writes it by default).

Attacks (ground truth in `ScenarioFiles.attacks`):
- `ssh-brute-force`: one address fails 30 SSH passwords in under 4 minutes against the GP practice's
  web server, then logs in; the same address also probes the hospital's bastion.
- `cloudtrail-stopped`: a compromised council IAM user stops the council's CloudTrail trail.
- `backdoor-access-key`: the same user creates an access key for another IAM user.
"""

from __future__ import annotations

import gzip
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from citysoc.ids import stable_id

SCENARIO_START = datetime(2026, 11, 16, 7, 0, tzinfo=UTC)
ATTACKER_IP = "203.0.113.77"  # TEST-NET-3: documentation range, never a real host
CLOUD_ATTACKER_IP = "198.51.100.23"  # TEST-NET-2
SERVICE_ROLES = frozenset({"deploy-bot", "finance-etl"})


@dataclass(frozen=True)
class ScenarioTenant:
    id: str
    name: str


TENANTS = (
    ScenarioTenant("northgate-hospital", "Northgate Hospital NHS Trust"),
    ScenarioTenant("riverside-council", "Riverside City Council"),
    ScenarioTenant("elm-street-gp", "Elm Street GP Practice"),
)


@dataclass
class ScenarioFiles:
    """Files written per (tenant, source), the year for syslog lines without one, and the attacks."""

    inputs: list[tuple[str, str, Path]] = field(default_factory=list)
    year: int = SCENARIO_START.year
    attacks: dict[str, dict[str, Any]] = field(default_factory=dict)


class CityScenario:
    def __init__(self, *, seed: int = 7, start: datetime = SCENARIO_START, hours: int = 3) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.end = start + timedelta(hours=hours)

    # helpers -------------------------------------------------------------------------------------
    def _times(self, count: int) -> list[datetime]:
        span = (self.end - self.start).total_seconds()
        return sorted(self.start + timedelta(seconds=self.rng.uniform(0, span)) for _ in range(count))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # syslog --------------------------------------------------------------------------------------
    def _auth_baseline(self, host: str, staff: list[str], count: int) -> list[tuple[datetime, str, str]]:
        """(time, program[pid], message) of an ordinary morning on a Linux server."""
        lines: list[tuple[datetime, str, str]] = []
        for at in self._times(count):
            pid = self.rng.randint(1000, 65000)
            user = self.rng.choice(staff)
            ip = f"10.{self.rng.randint(10, 40)}.{self.rng.randint(0, 255)}.{self.rng.randint(2, 250)}"
            port = self.rng.randint(40000, 65000)
            kind = self.rng.random()
            if kind < 0.35:
                lines.append((at, f"sshd[{pid}]", f"Accepted publickey for {user} from {ip} port {port} ssh2: "
                              f"RSA SHA256:{self.rng.getrandbits(64):016x}"))
                lines.append((at + timedelta(seconds=1), f"sshd[{pid}]",
                              f"pam_unix(sshd:session): session opened for user {user}(uid=1000) by (uid=0)"))
            elif kind < 0.45:  # a typo now and then: far below any brute-force threshold
                lines.append((at, f"sshd[{pid}]", f"Failed password for {user} from {ip} port {port} ssh2"))
            elif kind < 0.75:
                lines.append((at, f"CRON[{pid}]",
                              "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"))
                lines.append((at + timedelta(seconds=2), f"CRON[{pid}]",
                              "pam_unix(cron:session): session closed for user root"))
            elif kind < 0.9:
                lines.append((at, f"sudo[{pid}]", f"{user} : TTY=pts/0 ; PWD=/home/{user} ; USER=root ; "
                              "COMMAND=/usr/bin/systemctl status nginx"))
            else:
                logind = f"systemd-logind[{self.rng.randint(300, 900)}]"
                lines.append((at, logind, f"New session {self.rng.randint(100, 9999)} of user {user}."))
        return lines

    def _system_baseline(self, count: int) -> list[tuple[datetime, str, str]]:
        messages = [
            ("systemd[1]", "Started Daily apt download activities."),
            ("systemd[1]", "Starting Rotate log files..."),
            ("kernel", "[UFW BLOCK] IN=eth0 OUT= SRC=192.0.2.{n} DST=10.20.0.5 PROTO=TCP SPT=51515 DPT=23"),
            ("postfix/smtpd[{p}]", "connect from mail.example.net[192.0.2.{n}]"),
            ("nginx[{p}]", "worker process {p} exited with code 0"),
            ("chronyd[{p}]", "Selected source 192.0.2.{n} (ntp.example.net)"),
        ]
        out = []
        for at in self._times(count):
            program, message = self.rng.choice(messages)
            n, p = self.rng.randint(1, 254), self.rng.randint(1000, 65000)
            out.append((at, program.format(p=p), message.format(n=n, p=p)))
        return out

    def _brute_force(self, start: datetime, failures: int, *, then_success: bool) -> list[tuple[datetime, str, str]]:
        users = ["admin", "root", "test", "oracle", "backup", "ubuntu", "pi", "postgres"]
        lines, at = [], start
        for index in range(failures):
            pid, port = self.rng.randint(20000, 30000), self.rng.randint(30000, 60000)
            user = users[index % len(users)]
            invalid = user not in {"root", "backup"}
            if invalid:
                lines.append((at, f"sshd[{pid}]", f"Invalid user {user} from {ATTACKER_IP} port {port}"))
            who = f"invalid user {user}" if invalid else user
            lines.append((at + timedelta(seconds=1), f"sshd[{pid}]",
                          f"Failed password for {who} from {ATTACKER_IP} port {port} ssh2"))
            at += timedelta(seconds=self.rng.uniform(3, 7))
        if then_success:
            pid = self.rng.randint(20000, 30000)
            lines.append((at, f"sshd[{pid}]", f"Accepted password for backup from {ATTACKER_IP} port 50122 ssh2"))
        return lines

    @staticmethod
    def _write_bsd(path: Path, host: str, lines: list[tuple[datetime, str, str]], *, pri: int | None) -> None:
        """RFC 3164 (with `pri`) or the rsyslog file form without PRI and year (`pri=None`)."""
        with path.open("w") as out:
            for at, program, message in sorted(lines):
                stamp = f"{at:%b} {at.day:2d} {at:%H:%M:%S}"
                prefix = f"<{pri}>" if pri is not None else ""
                out.write(f"{prefix}{stamp} {host} {program}: {message}\n")

    @staticmethod
    def _write_5424(path: Path, host: str, lines: list[tuple[datetime, str, str]]) -> None:
        with path.open("w") as out:
            for at, program, message in sorted(lines):
                app, _, pid = program.partition("[")
                stamp = at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
                out.write(f"<86>1 {stamp} {host} {app} {pid.rstrip(']') or '-'} - - {message}\n")

    # CloudTrail ----------------------------------------------------------------------------------
    def _record(self, at: datetime, *, account: str, user: str, ip: str, source: str, name: str,
                region: str = "eu-west-2", request: dict[str, Any] | None = None,
                response: dict[str, Any] | None = None, read_only: bool = True,
                agent: str = "aws-cli/2.15.30 Python/3.11.8 Linux/6.1.0 exe/x86_64.debian.12") -> dict[str, Any]:
        if user in SERVICE_ROLES:  # workloads act through an assumed role, not a long-lived user key
            role_id = f"AROA{self.rng.getrandbits(60):015X}"
            identity: dict[str, Any] = {
                "type": "AssumedRole", "principalId": f"{role_id}:{user}-session",
                "arn": f"arn:aws:sts::{account}:assumed-role/{user}/{user}-session", "accountId": account,
                "accessKeyId": f"ASIA{self.rng.getrandbits(60):016X}"[:20],
                "sessionContext": {
                    "sessionIssuer": {"type": "Role", "principalId": role_id, "userName": user, "accountId": account,
                                      "arn": f"arn:aws:iam::{account}:role/{user}"},
                    "attributes": {"creationDate": at.strftime("%Y-%m-%dT%H:%M:%SZ"), "mfaAuthenticated": "false"},
                },
            }
        else:
            identity = {
                "type": "IAMUser", "principalId": f"AIDA{self.rng.getrandbits(60):015X}",
                "arn": f"arn:aws:iam::{account}:user/{user}", "accountId": account,
                "accessKeyId": f"AKIA{self.rng.getrandbits(60):016X}"[:20], "userName": user,
            }
        return {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": ip,
            "userAgent": agent,
            "requestParameters": request,
            "responseElements": response,
            "requestID": self._uuid(),
            "eventID": self._uuid(),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account,
            "eventCategory": "Management",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": f"{source.split('.')[0]}.{region}.amazonaws.com"},
        }

    def _cloud_baseline(self, account: str, users: list[str], count: int) -> list[dict[str, Any]]:
        people = [user for user in users if user not in SERVICE_ROLES]
        workloads = [user for user in users if user in SERVICE_ROLES]
        Call = tuple[str, str, dict[str, Any] | None]
        calls: list[Call] = [
            ("ec2.amazonaws.com", "DescribeInstances", {"maxResults": 100}),
            ("s3.amazonaws.com", "GetBucketAcl", {"bucketName": "council-records", "acl": ""}),
            ("sts.amazonaws.com", "GetCallerIdentity", None),
            ("iam.amazonaws.com", "ListUsers", None),
            ("cloudtrail.amazonaws.com", "DescribeTrails", {"includeShadowTrails": True}),
            ("cloudtrail.amazonaws.com", "LookupEvents", {"maxResults": 50}),
            ("logs.amazonaws.com", "DescribeLogGroups", None),
            ("kms.amazonaws.com", "ListKeys", None),
        ]
        workload_calls: list[Call] = [
            ("s3.amazonaws.com", "ListBuckets", None),
            ("s3.amazonaws.com", "GetObject", {"bucketName": "council-records", "key": "exports/daily.csv"}),
            ("s3.amazonaws.com", "PutObject", {"bucketName": "council-backups", "key": "db/nightly.dump"}),
        ]
        records = []
        for at in self._times(count):
            ip = f"81.2.69.{self.rng.randint(140, 160)}"  # the council's egress range
            if self.rng.random() < 0.3:  # nightly jobs: list the buckets, read objects
                user, (source, name, request) = self.rng.choice(workloads), self.rng.choice(workload_calls)
            else:
                user, (source, name, request) = self.rng.choice(people), self.rng.choice(calls)
            records.append(self._record(at, account=account, user=user, ip=ip, source=source, name=name,
                                        request=request))
        return records

    @staticmethod
    def _write_cloudtrail(root: Path, account: str, records: list[dict[str, Any]], region: str = "eu-west-2") -> None:
        """One gzipped file per hour, as CloudTrail delivers to S3."""
        by_hour: dict[str, list[dict[str, Any]]] = {}
        for record in sorted(records, key=lambda r: r["eventTime"]):
            by_hour.setdefault(record["eventTime"][:13], []).append(record)
        for hour, batch in by_hour.items():
            day = hour[:10].replace("-", "/")
            folder = root / "AWSLogs" / account / "CloudTrail" / region / day
            folder.mkdir(parents=True, exist_ok=True)
            stamp = hour.replace("-", "").replace(":", "") + "00Z"
            name = f"{account}_CloudTrail_{region}_{stamp}_{stable_id(account, hour)[:16]}.json.gz"
            with gzip.GzipFile(folder / name, "wb", mtime=0) as out:
                out.write(orjson.dumps({"Records": batch}))

    # the whole city ------------------------------------------------------------------------------
    def write(self, root: Path) -> ScenarioFiles:
        root.mkdir(parents=True, exist_ok=True)
        files = ScenarioFiles()

        # Elm Street GP: one web server; brute force then a successful login.
        gp = root / "elm-street-gp"
        gp.mkdir(exist_ok=True)
        brute_start = self.start + timedelta(minutes=95)
        gp_lines = self._auth_baseline("gp-web01", ["drpatel", "reception", "itsupport"], 220)
        gp_lines += self._brute_force(brute_start, 30, then_success=True)
        self._write_bsd(gp / "auth.log", "gp-web01", gp_lines, pri=None)
        self._write_bsd(gp / "syslog", "gp-web01", self._system_baseline(300), pri=30)  # daemon.info
        files.inputs += [("elm-street-gp", "syslog", gp / "auth.log"), ("elm-street-gp", "syslog", gp / "syslog")]

        # Northgate Hospital: RFC 5424 from its bastion; the same address probes it a little later.
        hospital = root / "northgate-hospital"
        hospital.mkdir(exist_ok=True)
        bastion = self._auth_baseline("ngh-bastion", ["a.okafor", "m.lewis", "pacs-admin"], 260)
        bastion += self._brute_force(brute_start + timedelta(minutes=20), 12, then_success=False)
        bastion += self._system_baseline(200)
        self._write_5424(hospital / "bastion.log", "ngh-bastion.northgate.nhs.example", bastion)
        files.inputs.append(("northgate-hospital", "syslog", hospital / "bastion.log"))

        # Riverside Council: CloudTrail; a compromised user stops the trail and plants an access key.
        council = root / "riverside-council"
        account = "210987654321"
        records = self._cloud_baseline(account, ["j.harris", "s.khan", "deploy-bot", "finance-etl"], 900)
        attack_at = self.start + timedelta(minutes=130)
        stop = self._record(attack_at, account=account, user="j.harris", ip=CLOUD_ATTACKER_IP,
                            source="cloudtrail.amazonaws.com", name="StopLogging", read_only=False,
                            request={"name": f"arn:aws:cloudtrail:eu-west-2:{account}:trail/council-org-trail"})
        key = self._record(attack_at + timedelta(minutes=3), account=account, user="j.harris", ip=CLOUD_ATTACKER_IP,
                           source="iam.amazonaws.com", name="CreateAccessKey", read_only=False,
                           request={"userName": "svc-backup"},
                           response={"accessKey": {"accessKeyId": "AKIAEXAMPLEBACKDOOR1", "status": "Active",
                                                   "userName": "svc-backup", "createDate": "Nov 16, 2026 9:13:00 AM"}})
        records += [stop, key]
        self._write_cloudtrail(council, account, records)
        files.inputs.append(("riverside-council", "aws.cloudtrail", council))

        files.attacks = {
            "ssh-brute-force": {"tenant": "elm-street-gp", "source.ip": ATTACKER_IP, "failures": 30},
            "ssh-probe": {"tenant": "northgate-hospital", "source.ip": ATTACKER_IP, "failures": 12},
            "cloudtrail-stopped": {"tenant": "riverside-council", "event.id": stop["eventID"]},
            "backdoor-access-key": {"tenant": "riverside-council", "event.id": key["eventID"]},
        }
        return files
