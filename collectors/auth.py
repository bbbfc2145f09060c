"""Authentication messages (sshd, PAM, sudo) -> ECS, following Elastic's system/auth ingest pipeline.

Input is the message part of a syslog line (after `prog[pid]: `); output is flat dotted ECS fields
to merge into the event. Unrecognised messages give no fields: the event is still stored.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

# Programs whose lines belong to `system.auth` (what Debian/RHEL route to auth.log / secure).
AUTH_PROGRAMS: frozenset[str] = frozenset({
    "sshd", "sshd-session", "sshd-auth", "sudo", "su", "doas", "login", "passwd", "chpasswd", "chage", "chsh", "chfn",
    "useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "gpasswd", "newgrp", "unix_chkpwd",
    "systemd-logind", "polkitd", "pkexec", "gdm-password", "lightdm",
})
# Syslog facilities auth (4) and authpriv (10): their lines are auth whatever the program.
AUTH_FACILITIES: frozenset[int] = frozenset({4, 10})

_PREAUTH = re.compile(r"\s+\[preauth\]$")
_REPEATED = re.compile(r"^message repeated \d+ times: \[\s?(?P<inner>.*)\]$")
_USER_PREFIX = r"(?:(?:invalid |authenticating )?user (?P<user>\S+) )?"
_PORT = r"(?: port (?P<port>\d+))?"

# (ssh.event, pattern) for sshd messages; tried in order, first match wins.
_SSHD: list[tuple[str | None, re.Pattern[str]]] = [
    (None, re.compile(
        r"^(?P<event>Failed|Accepted) (?P<method>\S+) for (?:invalid user )?(?P<user>.*?) from (?P<ip>\S+)"
        r" port (?P<port>\d+)(?: ssh2)?(?:: (?P<signature>.+))?$"
    )),
    ("Invalid", re.compile(rf"^Invalid user (?P<user>.*?) from (?P<ip>\S+){_PORT}$")),
    ("Received disconnect", re.compile(rf"^(?:error: )?Received disconnect from (?P<ip>[^\s:]+){_PORT}:")),
    ("Disconnected", re.compile(rf"^Disconnected from {_USER_PREFIX}(?P<ip>\S+){_PORT}")),
    ("Connection closed", re.compile(rf"^Connection closed by {_USER_PREFIX}(?P<ip>\S+){_PORT}")),
    ("Connection reset", re.compile(rf"^Connection reset by {_USER_PREFIX}(?P<ip>\S+){_PORT}")),
    ("Disconnecting", re.compile(rf"^Disconnecting(?: {_USER_PREFIX}(?P<ip>\S+){_PORT})?:")),
    ("Did not receive identification string",
     re.compile(rf"^Did not receive identification string from (?P<ip>\S+){_PORT}")),
]
_PAM_FAILURE = re.compile(r"authentication failures?;.*?\brhost=(?P<ip>\S*)(?:\s+user=(?P<user>\S+))?")
_PAM_SESSION = re.compile(r"session (?P<state>opened|closed) for user (?P<user>[^\s(]+)")
_SUDO = re.compile(r"^\s*(?P<user>\S+) : (?:.+? ; )?TTY=\S+ ; PWD=.+? ; USER=(?P<target>\S+) ; .*COMMAND=")


def is_auth(program: str | None, message: str, facility: int | None) -> bool:
    """The dataset rule: auth programs, auth/authpriv facilities, and PAM messages from any program."""
    if facility in AUTH_FACILITIES:
        return True
    if program and program.lower() in AUTH_PROGRAMS:
        return True
    return message.startswith("pam_")


def auth_fields(program: str | None, message: str) -> dict[str, Any]:
    """ECS fields (flat, dotted) read from one auth message; empty when nothing is recognised."""
    text = _PREAUTH.sub("", message.strip())
    repeated = _REPEATED.match(text)
    if repeated:  # "message repeated 5 times: [ Failed password ...]" counts as the inner message
        text = repeated.group("inner").strip()
    if program and program.lower().startswith("sshd"):
        fields = _sshd_fields(text)
        if fields:
            return fields
    fields = _pam_fields(text)
    if not fields and program == "sudo":
        fields = _sudo_fields(text)
    return fields


def _sshd_fields(text: str) -> dict[str, Any]:
    for event, pattern in _SSHD:
        match = pattern.match(text)
        if not match:
            continue
        groups = match.groupdict()
        event = event or groups["event"]
        fields: dict[str, Any] = {"system.auth.ssh.event": event}
        fields.update(_endpoint(groups.get("ip"), groups.get("port")))
        fields.update(_user(groups.get("user")))
        if event in ("Failed", "Accepted"):
            fields["system.auth.ssh.method"] = groups["method"]
            if groups.get("signature"):
                fields["system.auth.ssh.signature"] = groups["signature"]
            fields.update(_authentication("ssh_login", "success" if event == "Accepted" else "failure"))
        elif event == "Invalid":
            fields.update(_authentication("invalid_user", "failure"))
        return fields
    return {}


def _pam_fields(text: str) -> dict[str, Any]:
    failure = _PAM_FAILURE.search(text)
    if failure:
        fields: dict[str, Any] = {"event.category": ["authentication"], "event.type": ["info"],
                                  "event.outcome": "failure"}
        fields.update(_endpoint(failure.group("ip") or None, None))
        fields.update(_user(failure.group("user")))
        return fields
    session = _PAM_SESSION.search(text)
    if session:
        return {"event.category": ["session"], "event.type": ["start" if session.group("state") == "opened" else "end"],
                **_user(session.group("user"))}
    return {}


def _sudo_fields(text: str) -> dict[str, Any]:
    match = _SUDO.match(text)
    if not match:
        return {}
    user, target = match.group("user"), match.group("target")
    return {"user.name": user, "related.user": list(dict.fromkeys([user, target])),
            "event.category": ["process"], "event.type": ["start"]}


def _authentication(action: str, outcome: str) -> dict[str, Any]:
    return {"event.category": ["authentication"], "event.type": ["info"], "event.action": action,
            "event.outcome": outcome}


def _endpoint(address: str | None, port: str | None) -> dict[str, Any]:
    if not address:
        return {}
    fields: dict[str, Any] = {"source.address": address}
    try:
        fields["source.ip"] = str(ipaddress.ip_address(address))
        fields["related.ip"] = [fields["source.ip"]]
    except ValueError:
        pass  # a host name (sshd with UseDNS): kept in source.address only
    if port:
        fields["source.port"] = int(port)
    return fields


def _user(name: str | None) -> dict[str, Any]:
    return {"user.name": name, "related.user": [name]} if name else {}
