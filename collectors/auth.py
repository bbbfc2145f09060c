"""Authentication messages -> ECS, a batch at a time, the way Elastic's system/auth pipeline maps them.

Covered, as the major distributions and devices write them: OpenSSH (`Failed`/`Accepted <method> for
[invalid user] U from A port N`, `Invalid user`, `Connection closed by invalid|authenticating user`,
`Disconnected from ...`, `maximum authentication attempts exceeded`, FreeBSD's `error: PAM: Authentication
error for`, `User U from A not allowed`), Dropbear (Alpine/busybox systems), PAM (`pam_unix(svc:auth):
authentication failure; ... ruser= rhost= user=`, the older `sshd(pam_unix)[pid]:` form, `PAM N more
authentication failures`, `pam_authenticate: Authentication failure`, sessions opened/closed), su
(util-linux/shadow `FAILED SU (to T) U on tty`, FreeBSD `BAD SU`, busybox `- tty U:T`), sudo (incorrect
password attempts, a password is required, NOT in sudoers, commands), login (util-linux `FAILED LOGIN n FROM
h FOR u`, shadow `FAILED LOGIN (n) on 'tty' [from 'h'] FOR 'u'`, FreeBSD `n LOGIN FAILURE(S) FROM h, u`,
busybox `invalid password for 'u'`), unix_chkpwd.

Every authentication failure gets `event.category`=[authentication], `event.outcome`=failure and, when the
line names them, `user.name` (the account whose credentials were checked: for su the target account, the
requesting one goes to `related.user`) and `source.ip`, or `source.domain` when the remote host is a name.
`source.address` keeps the host as written; a terminal (`tty1`, `/dev/pts/0`) is no network source.

Rules are RE2 expressions (linear time) tried in order, first match wins; each is only run on the lines of
its programs whose first word (or a literal they must contain) can match. `collectors/native/auth.c` spells the
same rules out in C (used when built, `SOC_NATIVE=0` turns it off); a change to `RULES` is a change to both, and
`tests/collectors/test_collectors_auth_native.py` fails until they agree.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from types import ModuleType
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from collectors.columns import int64_from_text
from collectors.native import load
from collectors.syslog_header import spread, within

# Programs whose lines belong to `system.auth` (what Debian/RHEL route to auth.log / secure).
AUTH_PROGRAMS: frozenset[str] = frozenset({
    "sshd", "sshd-session", "sshd-auth", "dropbear", "sudo", "su", "doas", "login", "passwd", "chpasswd", "chage",
    "chsh", "chfn", "useradd", "userdel", "usermod", "groupadd", "groupdel", "groupmod", "gpasswd", "newgrp",
    "unix_chkpwd", "systemd-logind", "polkitd", "pkexec", "gdm-password", "lightdm",
})
# Syslog facilities auth (4) and authpriv (10): their lines are auth whatever the program.
AUTH_FACILITIES: frozenset[int] = frozenset({4, 10})

AUTHENTICATION = ["authentication"]
FAILURE = {"event.category": AUTHENTICATION, "event.type": ["info"], "event.outcome": "failure"}
SUCCESS = {"event.category": AUTHENTICATION, "event.type": ["info"], "event.outcome": "success"}
_PORT = r"(?: port (?P<port>[0-9]+))?"
_SUDO_TAIL = r" ; (?:TTY=[^ ]* ; )?PWD=.*? ; USER=(?P<other>[^ ]+) ;"


@dataclass(frozen=True)
class AuthRule:
    """One message shape: its programs (`*` any; `sshd` covers sshd-session and the like), the first word
    or a literal the message must hold, an RE2 pattern whose named groups are `user`, `address`, `port`,
    `method`, `signature` and `other` (a second user), and the ECS fields it sets whenever it matches."""

    programs: tuple[str, ...]
    pattern: str
    fields: Mapping[str, Any]
    first: str | None = None
    contains: str | None = None
    groups: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(re.findall(r"\?P<(\w+)>", self.pattern)))


def _ssh(event: str | None, action: str | None, outcome: dict[str, Any] | None) -> dict[str, Any]:
    return {**({"system.auth.ssh.event": event} if event else {}), **({"event.action": action} if action else {}),
            **(outcome or {})}


SSHD = ("sshd",)
RULES: tuple[AuthRule, ...] = (
    AuthRule(SSHD, r"^Failed (?P<method>[^ ]+) for (?:invalid user |illegal user )?(?P<user>.*?) from "
             r"(?P<address>[^ ]+) port (?P<port>[0-9]+)(?: ssh[12])?(?:: (?P<signature>.+))?$",
             _ssh("Failed", "ssh_login", FAILURE), first="Failed"),
    AuthRule(SSHD, r"^Accepted (?P<method>[^ ]+) for (?P<user>.*?) from (?P<address>[^ ]+) port (?P<port>[0-9]+)"
             r"(?: ssh[12])?(?:: (?P<signature>.+))?$", _ssh("Accepted", "ssh_login", SUCCESS), first="Accepted"),
    AuthRule(SSHD, rf"^Invalid user (?P<user>.*?) from (?P<address>[^ ]+){_PORT}$",
             _ssh("Invalid", "invalid_user", FAILURE), first="Invalid"),
    AuthRule(SSHD, rf"^Illegal user (?P<user>.*?) from (?P<address>[^ ]+){_PORT}$",
             _ssh("Invalid", "invalid_user", FAILURE), first="Illegal"),
    AuthRule(SSHD, rf"^Received disconnect from (?P<address>[^ ]+?){_PORT}:", _ssh("Received disconnect", None, None),
             first="Received"),
    *(AuthRule(SSHD, rf"^{phrase} (?:invalid|authenticating) user (?P<user>[^ ]*) (?P<address>[^ ]+){_PORT}",
               _ssh(event, "ssh_login", FAILURE), first=phrase.split()[0])
      for phrase, event in (("Disconnected from", "Disconnected"), ("Connection closed by", "Connection closed"),
                            ("Connection reset by", "Connection reset"))),
    *(AuthRule(SSHD, rf"^{phrase} (?:user (?P<user>[^ ]+) )?(?P<address>[^ ]+){_PORT}", _ssh(event, None, None),
               first=phrase.split()[0])
      for phrase, event in (("Disconnected from", "Disconnected"), ("Connection closed by", "Connection closed"),
                            ("Connection reset by", "Connection reset"))),
    AuthRule(SSHD, rf"^Disconnecting (?:invalid|authenticating) user (?P<user>[^ ]+) (?P<address>[^ ]+){_PORT}:",
             _ssh("Disconnecting", "ssh_login", FAILURE), first="Disconnecting"),
    AuthRule(SSHD, r"^Disconnecting: Too many authentication failures(?: for (?:invalid user )?(?P<user>[^ ]+))?",
             _ssh("Disconnecting", "ssh_login", FAILURE), first="Disconnecting:"),
    AuthRule(SSHD, rf"^Disconnecting(?: user (?P<user>[^ ]+))? (?P<address>[^ ]+){_PORT}:",
             _ssh("Disconnecting", None, None), first="Disconnecting"),
    AuthRule(SSHD, rf"^Did not receive identification string from (?P<address>[^ ]+){_PORT}",
             _ssh("Did not receive identification string", None, None), first="Did"),
    AuthRule(SSHD, r"^error: maximum authentication attempts exceeded for (?:invalid user )?(?P<user>[^ ]+) from "
             rf"(?P<address>[^ ]+){_PORT}", _ssh(None, "ssh_login", FAILURE), first="error:"),
    AuthRule(SSHD, r"^error: PAM: [Aa]uthentication (?:failure|error) for (?:illegal user |invalid user )?"
             r"(?P<user>[^ ]+) from (?P<address>[^ ]+)$", _ssh(None, "ssh_login", FAILURE), first="error:"),
    AuthRule(SSHD, r"^User (?P<user>[^ ]+) from (?P<address>[^ ]+) not allowed because",
             _ssh(None, "ssh_login", FAILURE), first="User"),
    AuthRule(SSHD, r"^input_userauth_request: (?:invalid|illegal) user (?P<user>[^ ]*)", {},
             first="input_userauth_request:"),
    AuthRule(SSHD, rf"^Unable to negotiate with (?P<address>[^ ]+){_PORT}:", {}, first="Unable"),
    AuthRule(SSHD, r"^reverse mapping checking getaddrinfo for [^ ]+ \[(?P<address>[^\]]+)\] failed", {},
             first="reverse"),
    # Dropbear (Alpine, OpenWrt, busybox systems)
    AuthRule(("dropbear",), r"^Bad password attempt for '(?P<user>[^']*)' from (?P<address>[^ ]+):(?P<port>[0-9]+)$",
             {**_ssh("Failed", "ssh_login", FAILURE), "system.auth.ssh.method": "password"}, first="Bad"),
    AuthRule(("dropbear",), r"^Login attempt for nonexistent user(?: '(?P<user>[^']*)')? from "
             r"(?P<address>[^ ]+):(?P<port>[0-9]+)$", _ssh("Invalid", "invalid_user", FAILURE), first="Login"),
    AuthRule(("dropbear",), r"^(?P<method>Password|Pubkey) auth succeeded for '(?P<user>[^']*)'.*? from "
             r"(?P<address>[^ ]+):(?P<port>[0-9]+)$", _ssh("Accepted", "ssh_login", SUCCESS)),
    # PAM, from any program (sshd, su, sudo, login, gdm, ...)
    AuthRule(("*",), r"authentication failures?; logname=[^ ]* uid=[^ ]* euid=[^ ]* tty=[^ ]* ruser=(?P<other>[^ ]*) "
             r"rhost=(?P<address>[^ ]*)(?: +user=(?P<user>[^ ]*))?", FAILURE, contains="authentication failure"),
    AuthRule(("*",), r"authentication failures?;.*?rhost=(?P<address>[^ ]*)(?: +user=(?P<user>[^ ]+))?", FAILURE,
             contains="authentication failure"),
    AuthRule(("*",), r"pam_authenticate: Authentication failure", FAILURE, contains="pam_authenticate:"),
    AuthRule(("*",), r"session opened for user (?P<user>[^ (]+)(?:\(uid=[0-9]+\))?(?: by (?P<other>[^ (]+))?",
             {"event.category": ["session"], "event.type": ["start"]}, contains="session opened"),
    AuthRule(("*",), r"session closed for user (?P<user>[^ (]+)",
             {"event.category": ["session"], "event.type": ["end"]}, contains="session closed"),
    # su
    AuthRule(("su",), r"^FAILED SU \(to (?P<user>[^)]*)\) (?P<other>[^ ]+) on ", {**FAILURE, "event.action": "su"},
             first="FAILED"),
    AuthRule(("su",), r"^FAILED su for (?P<user>[^ ]+) by (?P<other>[^ ]+)", {**FAILURE, "event.action": "su"},
             first="FAILED"),
    AuthRule(("su",), r"^BAD SU (?P<other>[^ ]+) to (?P<user>[^ ]+)", {**FAILURE, "event.action": "su"}, first="BAD"),
    AuthRule(("su",), r"^- [^ ]+ (?P<other>[^ :]+):(?P<user>[^ ]+)$", {**FAILURE, "event.action": "su"}, first="-"),
    AuthRule(("su",), r"^\+ [^ ]+ (?P<other>[^ :]+):(?P<user>[^ ]+)$", {**SUCCESS, "event.action": "su"}, first="+"),
    AuthRule(("su",), r"^\(to (?P<user>[^)]*)\) (?P<other>[^ ]+) on ", {**SUCCESS, "event.action": "su"},
             first="(to"),
    AuthRule(("su",), r"^Successful su for (?P<user>[^ ]+) by (?P<other>[^ ]+)", {**SUCCESS, "event.action": "su"},
             first="Successful"),
    # sudo
    AuthRule(("sudo",), rf"^ *(?P<user>[^ ]+) : [0-9]+ incorrect password attempts?{_SUDO_TAIL}",
             {**FAILURE, "event.action": "sudo"}, contains="incorrect password attempt"),
    AuthRule(("sudo",), rf"^ *(?P<user>[^ ]+) : a password is required{_SUDO_TAIL}",
             {**FAILURE, "event.action": "sudo"}, contains="a password is required"),
    AuthRule(("sudo",), rf"^ *(?P<user>[^ ]+) : (?:user NOT in sudoers|user NOT authorized on host|command not "
             rf"allowed){_SUDO_TAIL}", {"event.category": ["process"], "event.type": ["denied"],
                                        "event.outcome": "failure", "event.action": "sudo"}, contains=" NOT "),
    AuthRule(("sudo",), r"^ *(?P<user>[^ ]+) : (?:.+? ; )?(?:TTY=[^ ]* ; )?PWD=.*? ; USER=(?P<other>[^ ]+) ; "
             r".*COMMAND=", {"event.category": ["process"], "event.type": ["start"]}, contains="COMMAND="),
    # login
    AuthRule(("login",), r"^FAILED LOGIN (?:SESSION |[0-9]+ )FROM (?P<address>[^ ]+) FOR (?P<user>[^,]+),",
             {**FAILURE, "event.action": "login"}, first="FAILED"),
    AuthRule(("login",), r"^FAILED LOGIN \([0-9]+\) on '[^']*'(?: from '(?P<address>[^']*)')? FOR '(?P<user>[^']*)'",
             {**FAILURE, "event.action": "login"}, first="FAILED"),
    AuthRule(("login",), r"^TOO MANY LOGIN TRIES \([0-9]+\) (?:FROM (?P<address>[^ ]+) )?(?:on '[^']*' )?"
             r"FOR '?(?P<user>[^,']+)'?,", {**FAILURE, "event.action": "login"}, first="TOO"),
    AuthRule(("login",), r"^[0-9]+ LOGIN FAILURES? (?:FROM (?P<address>[^ ,]+)|ON [^ ,]+), (?P<user>[^ ]+)$",
             {**FAILURE, "event.action": "login"}, contains="LOGIN FAILURE"),
    AuthRule(("login",), r"^invalid password for '(?P<user>[^']*)'(?: on '[^']*')?(?: from '(?P<address>[^']*)')?",
             {**FAILURE, "event.action": "login"}, first="invalid"),
    AuthRule(("login",), r"^LOGIN ON [^ ]+ BY (?P<user>[^ ]+)(?: FROM (?P<address>[^ ]+))?",
             {**SUCCESS, "event.action": "login"}, first="LOGIN"),
    AuthRule(("login",), r"^login on [^ ]+ as (?P<user>[^ ]+)", {**SUCCESS, "event.action": "login"}, first="login"),
    AuthRule(("unix_chkpwd",), r"^password check failed for user \((?P<user>[^)]*)\)", FAILURE, first="password"),
)
_FIRST_WORDS = pa.array(sorted({rule.first for rule in RULES if rule.first}))
_FIRST_CODES = {word: code for code, word in enumerate(_FIRST_WORDS.to_pylist())}
_GROUPS = ("user", "address", "port", "method", "signature", "other")
_FIXED = tuple(dict.fromkeys(name for rule in RULES for name in rule.fields))
_TERMINAL = re.compile(r"^(?:/dev/)?(?:tty|pts|console|vc/|hvc|:[0-9])", re.IGNORECASE)
_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$", re.ASCII)
_NOT_A_HOST = frozenset({"unknown", "?", "-", "(null)"})


def is_auth(programs: pa.Array, messages: pa.Array, facilities: pa.Array) -> pa.Array:
    """The dataset rule: auth programs, auth/authpriv facilities, and PAM messages from any program."""
    by_program = pc.is_in(programs, value_set=pa.array(sorted(AUTH_PROGRAMS)))
    by_facility = pc.is_in(facilities, value_set=pa.array(sorted(AUTH_FACILITIES), pa.int64()))
    by_message = pc.starts_with(messages, "pam_")
    return pc.fill_null(pc.or_kleene(pc.or_kleene(by_program, by_facility), by_message), False)


def _clean(messages: pa.Array) -> pa.Array:
    """`[preauth]` dropped; `message repeated N times: [ X]` read as X."""
    preauth = pc.fill_null(pc.ends_with(messages, "[preauth]"), False)
    if pc.any(preauth).as_py():
        stripped = pc.replace_substring_regex(messages.filter(preauth), r"\s+\[preauth\]$", "")
        messages = pc.replace_with_mask(messages, preauth, stripped)
    repeated = pc.fill_null(pc.starts_with(messages, "message repeated "), False)
    if pc.any(repeated).as_py():
        inner = pc.extract_regex(messages.filter(repeated), r"^message repeated [0-9]+ times: \[ ?(?P<inner>.*)\]$")
        unwrapped = pc.if_else(inner.is_valid(), inner.field("inner"), messages.filter(repeated))
        messages = pc.replace_with_mask(messages, repeated, pc.utf8_trim_whitespace(unwrapped))
    return messages


def auth_fields(programs: pa.Array, messages: pa.Array) -> dict[str, pa.Array]:
    """Flat ECS columns read from auth messages (lower-case program names, messages), null where nothing is
    recognised; the event is stored either way.

    The rules are matched by the compiled `collectors._auth` when it is built (one pass over the batch, the
    rows it hands back matched here), else by `_match` with Arrow kernels: the columns are the same.
    """
    native = load("auth")
    if native is not None and len(messages) and programs.type == pa.string() and messages.type == pa.string():
        captured, matched_rule = _native_match(native, programs, messages)
    else:
        captured, matched_rule = _match(programs, messages)
    return _ecs(captured, matched_rule)


def _native_match(native: ModuleType, programs: pa.Array, messages: pa.Array) -> tuple[dict[str, pa.Array],
                                                                                      pa.Array]:
    """`_match` by `collectors._auth` over the columns' Arrow buffers; its results wrap new bytes objects without
    a copy. Rows it cannot decide (non-ASCII text, for one) come back in a mask and are matched by `_match`."""
    length = len(messages)
    p_validity, p_offsets, p_data = programs.buffers()
    m_validity, m_offsets, m_data = messages.buffers()
    if m_offsets is None:
        return _match(programs, messages)
    if p_offsets is None:  # all null
        p_validity, p_offsets = pa.py_buffer(bytes((length + 7) // 8)), pa.py_buffer(bytes(4 * (length + 1)))
    rule_validity, rule_values, rule_nulls, fallback, handed_back, groups = native.match(
        p_validity, p_offsets, p_data or b"", programs.offset, m_validity, m_offsets, m_data or b"",
        messages.offset, length)
    matched_rule = pa.Array.from_buffers(pa.int64(), length, [pa.py_buffer(rule_validity), pa.py_buffer(rule_values)],
                                         null_count=rule_nulls)
    captured = {name: pa.Array.from_buffers(pa.string(), length, [pa.py_buffer(validity), pa.py_buffer(offsets),
                                                                  pa.py_buffer(data)], null_count=nulls)
                for name, (validity, offsets, data, nulls) in zip(_GROUPS, groups, strict=True)}
    if handed_back:
        mask = pa.Array.from_buffers(pa.bool_(), length, [None, pa.py_buffer(fallback)])
        rest, rest_rule = _match(programs.filter(mask), messages.filter(mask))
        captured = {name: pc.replace_with_mask(values, mask, rest[name]) for name, values in captured.items()}
        matched_rule = pc.replace_with_mask(matched_rule, mask, rest_rule)
    return captured, matched_rule


def _match(programs: pa.Array, messages: pa.Array) -> tuple[dict[str, pa.Array], pa.Array]:
    """The six capture groups of each row's first matching rule (null: absent or empty), and the rule's number
    (null: none).

    A rule with a first word only looks at the lines starting with that word, one that must contain a literal
    only at the lines no rule has taken yet; string work is done once per batch, not once per rule.
    """
    length = len(messages)
    text = _clean(messages)
    family = pc.if_else(pc.fill_null(pc.starts_with(programs, "sshd"), False), "sshd", pc.fill_null(programs, ""))
    words = pc.list_element(pc.split_pattern(pc.utf8_ltrim_whitespace(text), " ", max_splits=1), 0)
    first_word = pc.fill_null(pc.index_in(words, value_set=_FIRST_WORDS), -1)  # -1: no rule's first word
    present = set(pc.unique(first_word).to_pylist())
    by_word: dict[int, pa.Array] = {}
    by_programs: dict[tuple[str, ...], pa.Array] = {}
    # what each rule matched, placed into full-length columns once at the end (not once per rule)
    positions: list[pa.Array] = []
    rule_numbers: list[pa.Array] = []
    values: dict[str, list[pa.Array]] = {group: [] for group in _GROUPS}
    remaining = pa.repeat(pa.scalar(True), length)
    for index, rule in enumerate(RULES):
        if rule.first is not None:
            code = _FIRST_CODES[rule.first]
            if code not in present:
                continue
            if code not in by_word:
                by_word[code] = pc.equal(first_word, code)
            candidates = pc.and_(remaining, by_word[code])
        else:
            candidates = remaining
        if rule.programs != ("*",):
            if rule.programs not in by_programs:
                by_programs[rule.programs] = pc.is_in(family, value_set=pa.array(rule.programs))
            candidates = pc.and_(candidates, by_programs[rule.programs])
        if rule.first is None:  # a literal the line must contain, looked for on the lines still open only
            if not pc.any(candidates).as_py():
                continue
            found_literal = pc.match_substring(text.filter(candidates), rule.contains or "")
            candidates = within(candidates, pc.fill_null(found_literal, False))
        if not pc.any(candidates).as_py():
            continue
        found = pc.extract_regex(text.filter(candidates), rule.pattern)
        hits = found.is_valid()
        count = pc.sum(hits).as_py() or 0
        if not count:
            continue
        rows = within(candidates, hits)
        positions.append(pc.indices_nonzero(rows))
        rule_numbers.append(pa.repeat(pa.scalar(index, pa.int64()), count))
        matched = found.filter(hits)
        for group in _GROUPS:
            values[group].append(matched.field(group) if group in rule.groups else pa.nulls(count, pa.string()))
        remaining = pc.and_(remaining, pc.invert(rows))
    placement = _placement(length, positions)
    captured = {group: _place(parts, placement, pa.string()) for group, parts in values.items()}
    empty = pa.scalar(None, pa.string())
    for group in ("user", "other", "method", "signature"):  # an empty capture is no value
        captured[group] = pc.if_else(pc.equal(captured[group], ""), empty, captured[group])
    return captured, _place(rule_numbers, placement, pa.int64())


def _placement(length: int, positions: list[pa.Array]) -> pa.Array:
    """For each row, where its value sits among the matched values in order (one past the end: none). A row is
    matched by one rule at most, so the positions are distinct."""
    matched = pa.concat_arrays(positions) if positions else pa.array([], pa.int64())
    found = pc.index_in(pa.arange(0, length), value_set=matched)
    return pc.fill_null(pc.cast(found, pa.int64()), len(matched))


def _place(parts: list[pa.Array], placement: pa.Array, kind: pa.DataType) -> pa.Array:
    return pa.concat_arrays([*parts, pa.nulls(1, kind)]).take(placement)


def _ecs(captured: dict[str, pa.Array], matched_rule: pa.Array) -> dict[str, pa.Array]:
    fields: dict[str, pa.Array] = {}
    which = pc.fill_null(matched_rule, len(RULES))
    for name, values in _fixed_values().items():
        fields[name] = values.take(which)
    fields["user.name"] = captured["user"]
    fields["system.auth.ssh.method"] = pc.coalesce(captured["method"], fields.get("system.auth.ssh.method",
                                                                                   captured["method"]))
    fields["system.auth.ssh.signature"] = captured["signature"]
    fields["source.port"] = int64_from_text(captured["port"])
    fields.update(_source(captured["address"]))
    fields["related.user"] = _distinct_lists(captured["user"], captured["other"])
    fields["related.ip"] = _distinct_lists(fields["source.ip"])
    return fields


@cache
def _fixed_values() -> dict[str, pa.Array]:
    """Per fixed field, its value for each rule and a last null (no rule): the arrays `_ecs` takes from."""
    arrays = {}
    for name in _FIXED:
        values = [rule.fields.get(name) for rule in RULES] + [None]
        kind = pa.list_(pa.string()) if isinstance(next(v for v in values if v is not None), list) else pa.string()
        arrays[name] = pa.array(values, kind)
    return arrays


def _source(addresses: pa.Array) -> dict[str, pa.Array]:
    """source.address / source.ip / source.domain from hosts as written; classified once per distinct value
    (one hash pass: the dictionary encoding gives the distinct values and each row's index among them)."""
    encoded = pc.dictionary_encode(addresses)
    kinds = [_classify(value) for value in encoded.dictionary.to_pylist()]
    positions = pc.fill_null(encoded.indices, len(kinds))

    def pick(slot: int) -> pa.Array:
        return pa.array([kind[slot] for kind in kinds] + [None], pa.string()).take(positions)

    return {"source.address": pick(0), "source.ip": pick(1), "source.domain": pick(2)}


def _classify(value: str) -> tuple[str | None, str | None, str | None]:
    """(address, ip, domain) of a host as a log line writes it; a terminal or `UNKNOWN` is no source."""
    host = value.strip().removeprefix("[").removesuffix("]")
    if not host or host.lower() in _NOT_A_HOST or _TERMINAL.match(host):
        return None, None, None
    try:
        return value, str(ipaddress.ip_address(host)), None
    except ValueError:
        return value, None, host.rstrip(".").lower() if _HOST_NAME.match(host) else None


def _distinct_lists(first: pa.Array, second: pa.Array | None = None) -> pa.Array:
    """[first, second] per row, without nulls or repeats; null when both are null."""
    if second is None or second.null_count == len(second):
        valid = first.is_valid()
        offsets = pc.cumulative_sum(pc.cast(valid, pa.int32()))
        offsets = pa.concat_arrays([pa.array([0], pa.int32()), offsets])
        return pa.ListArray.from_arrays(offsets, first.drop_null(), mask=pc.invert(valid))
    lists = [None if a is None and b is None else list(dict.fromkeys(v for v in (a, b) if v is not None))
             for a, b in zip(first.to_pylist(), second.to_pylist(), strict=True)]
    return pa.array(lists, pa.list_(pa.string()))


def spread_fields(mask: pa.Array, fields: dict[str, pa.Array]) -> dict[str, pa.Array]:
    """Columns computed for the rows of `mask` made full-length (null elsewhere)."""
    return {name: spread(mask, values) if not pa.types.is_list(values.type) else _spread_list(mask, values)
            for name, values in fields.items()}


def _spread_list(mask: pa.Array, values: pa.Array) -> pa.Array:
    if len(values) == len(mask):  # every row chosen (a stream of auth lines): nothing to move
        return values
    order = pc.fill_null(pc.subtract(pc.cumulative_sum(pc.cast(mask, pa.int64())), 1), 0)
    taken = values.take(order) if len(values) else pa.nulls(len(mask), values.type)
    return pc.if_else(mask, taken, pa.scalar(None, values.type)) if len(values) else taken
