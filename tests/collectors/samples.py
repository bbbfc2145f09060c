"""Realistic Sysmon for Linux and auditd lines, shaped as those tools write them, for parser and engine tests.

Sysmon for Linux (1.x) logs each event to syslog as one line of event XML with every EventData item of
the event type, `-` for empty ones; auditd writes `type=... msg=audit(EPOCH:SERIAL): key=value ...`, quoting
trusted strings and hex-encoding untrusted ones, and in its ENRICHED format appends the interpreted fields
after a group separator (0x1d).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

SYSMON_GUID = "{ff032593-a8d3-4f13-b0d6-01fc615a0f97}"
# EventData names in the order Sysmon for Linux writes them, per event id.
SYSMON_EVENT_DATA: dict[int, tuple[str, ...]] = {
    1: ("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion", "Description", "Product",
        "Company", "OriginalFileName", "CommandLine", "CurrentDirectory", "User", "LogonGuid", "LogonId",
        "TerminalSessionId", "IntegrityLevel", "Hashes", "ParentProcessGuid", "ParentProcessId", "ParentImage",
        "ParentCommandLine", "ParentUser"),
    3: ("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "User", "Protocol", "Initiated", "SourceIsIpv6",
        "SourceIp", "SourceHostname", "SourcePort", "SourcePortName", "DestinationIsIpv6", "DestinationIp",
        "DestinationHostname", "DestinationPort", "DestinationPortName"),
    11: ("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "TargetFilename", "CreationUtcTime", "User"),
    23: ("RuleName", "UtcTime", "ProcessGuid", "ProcessId", "User", "Image", "TargetFilename", "Hashes",
         "IsExecutable", "Archived"),
}


def sysmon_xml(event_id: int, data: dict[str, str], *, host: str = "web01", record: int = 78,
               utc: str = "2026-03-01 12:00:00.123") -> str:
    """One Sysmon for Linux event as it writes it (items it does not know get `-`)."""
    items = {"RuleName": "-", "UtcTime": utc, "ProcessGuid": "{6a1b2c3d-8e4f-65e1-0c1d-2a3b00000000}",
             "ProcessId": "4242", **data}
    event_data = "".join(
        f'<Data Name="{name}">{escape(items.get(name, "-"))}</Data>' for name in SYSMON_EVENT_DATA[event_id]
    )
    created = utc.replace(" ", "T") + "456000Z"
    return (
        f'<Event><System><Provider Name="Linux-Sysmon" Guid="{SYSMON_GUID}"/><EventID>{event_id}</EventID>'
        "<Version>5</Version><Level>4</Level><Task>1</Task><Opcode>0</Opcode>"
        f'<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime="{created}"/>'
        f"<EventRecordID>{record}</EventRecordID><Correlation/>"
        '<Execution ProcessID="1234" ThreadID="1234"/><Channel>Linux-Sysmon/Operational</Channel>'
        f'<Computer>{host}</Computer><Security UserId="0"/></System><EventData>{event_data}</EventData></Event>'
    )


def sysmon_line(event_id: int, data: dict[str, str], *, host: str = "web01", record: int = 78,
                utc: str = "2026-03-01 12:00:00.123") -> str:
    """The syslog line rsyslog writes for it (file form, as in /var/log/syslog)."""
    return f"Mar  1 12:00:00 {host} sysmon[1234]: {sysmon_xml(event_id, data, host=host, record=record, utc=utc)}"


def hexed(text: str) -> str:
    """auditd's encoding of an untrusted string (upper-case hex, unquoted)."""
    return text.encode().hex().upper()


# A shell running `getcap -r /` (x86_64, RAW format): SYSCALL, EXECVE, CWD, PATH, PROCTITLE, EOE.
AUDIT_GETCAP = [
    'type=SYSCALL msg=audit(1772366400.123:8811): arch=c000003e syscall=59 success=yes exit=0 a0=5611d0c1e2a0 '
    'a1=5611d0c1e3b0 a2=5611d0c1c010 a3=8 items=2 ppid=3301 pid=3342 auid=1000 uid=1000 gid=1000 euid=1000 '
    'suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="getcap" exe="/usr/sbin/getcap" '
    'subj=unconfined key="exec"',
    'type=EXECVE msg=audit(1772366400.123:8811): argc=3 a0="getcap" a1="-r" a2="/"',
    'type=CWD msg=audit(1772366400.123:8811): cwd="/home/alice"',
    'type=PATH msg=audit(1772366400.123:8811): item=0 name="/usr/sbin/getcap" inode=1837 dev=08:01 mode=0100755 '
    'ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0',
    f'type=PROCTITLE msg=audit(1772366400.123:8811): proctitle={hexed(chr(0).join(["getcap", "-r", "/"]))}',
    "type=EOE msg=audit(1772366400.123:8811): ",
]
# `split` with an argument that needs hex encoding (a space), and ENRICHED fields after 0x1d.
AUDIT_SPLIT_ENRICHED = [
    'type=SYSCALL msg=audit(1772366460.500:8900): arch=c000003e syscall=59 success=yes exit=0 a0=55d0 a1=55d1 '
    'a2=55d2 a3=0 items=2 ppid=3301 pid=3400 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 '
    'sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="split" exe="/usr/bin/split" key=(null)'
    '\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="alice" GID="alice" EUID="alice" SUID="alice" FSUID="alice" '
    'EGID="alice" SGID="alice" FSGID="alice"',
    f'type=EXECVE msg=audit(1772366460.500:8900): argc=4 a0="split" a1="-b" a2="1M" a3={hexed("/tmp/my db.sql")}',
]
# Look-alikes: `getcap` on one file, `sort` rather than `split`.
AUDIT_LOOKALIKES = [
    'type=EXECVE msg=audit(1772366520.000:9001): argc=2 a0="getcap" a1="/usr/bin/ping"',
    'type=SYSCALL msg=audit(1772366520.100:9002): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 '
    'items=2 ppid=3301 pid=3500 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 '
    'fsgid=1000 tty=pts0 ses=3 comm="sort" exe="/usr/bin/sort" key=(null)',
]
# memfd_create (319 on x86_64) by ecasound, RAW format: the rule names the syscall, the record its number.
AUDIT_MEMFD_RAW = (
    'type=SYSCALL msg=audit(1772366580.000:9100): arch=c000003e syscall=319 success=yes exit=3 a0=7f1c2a a1=1 '
    'a2=0 a3=0 items=0 ppid=3301 pid=3600 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 '
    'sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="ecasound" exe="/usr/bin/ecasound" key=(null)'
)
AUDIT_USER_LOGIN_FAILED = (
    "type=USER_LOGIN msg=audit(1772366640.000:9200): pid=5120 uid=0 auid=4294967295 ses=4294967295 "
    "subj=unconfined msg='op=login acct=\"admin\" exe=\"/usr/sbin/sshd\" hostname=? addr=203.0.113.50 "
    "terminal=sshd res=failed'"
)
