"""The compiled auth rules (`collectors._auth`) against their pure twin (`collectors.auth._match`, Arrow kernels).

Both paths run on the same input in one process (`SOC_NATIVE=0` forces the pure one) and must give the same
columns (values, nulls, types), parsed tables and dead letters: on every string of the collector tests, on
loghub's samples, and on fuzzed input (arbitrary text, and messages assembled from the rules' own words so
that they nearly match). Under `CI=true` the extension must have been built, so CI proves the compiled path.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collectors import ParserOptions, RawRecord, SyslogParser
from collectors.auth import RULES, _match, auth_fields
from collectors.native import NATIVE_ENV
from tests.conftest import require

NOW = datetime(2026, 3, 12, 11, 0, tzinfo=UTC)
TESTS = Path(__file__).resolve().parent
PROGRAMS = ["sshd", "sshd-session", "dropbear", "su", "sudo", "login", "unix_chkpwd", "cron", "gdm-password", None]
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def native() -> ModuleType:
    try:
        return importlib.import_module("collectors._auth")
    except ImportError as exc:
        require("collectors._auth", f"the compiled auth rules are not built ({exc}): run `pip install -e .` or "
                                    "`python setup.py build_ext --inplace`")
        raise


def test_the_compiled_path_is_built(native: ModuleType) -> None:
    assert callable(native.match)


def test_the_compiled_rules_are_the_python_rules_in_order(native: ModuleType) -> None:
    expected = [(rule.programs[0], rule.first, rule.contains if rule.first is None else None) for rule in RULES]
    assert [(programs, first, contains or None) for programs, first, contains in native.rules()] == expected
    assert all(len(rule.programs) == 1 for rule in RULES)


def both_paths(programs: list[str | None], messages: list[str | None]) -> tuple[dict[str, pa.Array], ...]:
    """auth_fields of the pure and the compiled path on the same columns (sliced too, so offsets count)."""
    padded_programs = pa.array(["sshd", *programs, "su"], pa.string()).slice(1, len(programs))
    padded_messages = pa.array(["x", *messages, "y"], pa.string()).slice(1, len(messages))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NATIVE_ENV, "0")
        pure = auth_fields(padded_programs, padded_messages)
        patch.setenv(NATIVE_ENV, "1")
        compiled = auth_fields(padded_programs, padded_messages)
    return pure, compiled


def assert_same_fields(programs: list[str | None], messages: list[str | None]) -> None:
    pure, compiled = both_paths(programs, messages)
    assert pure.keys() == compiled.keys()
    for name, values in pure.items():
        other = compiled[name]
        assert values.type == other.type, name
        if not values.equals(other):
            rows = [row for row in range(len(values)) if values[row] != other[row]]
            pytest.fail(f"{name} differs on {len(rows)} rows, first {messages[rows[0]]!r} ({programs[rows[0]]}): "
                        f"pure {values[rows[0]]}, compiled {other[rows[0]]}")


def parsed_both_ways(lines: list[str]) -> tuple[Any, Any]:
    records = [RawRecord(line.encode(), f"line {n}", NOW) for n, line in enumerate(lines)]
    parser = SyslogParser(ParserOptions(year=2024))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NATIVE_ENV, "0")
        pure = parser.parse_records(records, tenant="council", source="syslog")
        patch.setenv(NATIVE_ENV, "1")
        compiled = parser.parse_records(records, tenant="council", source="syslog")
    return pure, compiled


def assert_same_parse(lines: list[str]) -> None:
    pure, compiled = parsed_both_ways(lines)
    assert pure.tables.keys() == compiled.tables.keys()
    for dataset, table in pure.tables.items():
        assert table.equals(compiled.tables[dataset]), dataset
    assert pure.dead == compiled.dead


def test_string_columns_through_the_buffers_are_read_as_they_are(native: ModuleType) -> None:
    messages = pa.array(["Failed password for root from 192.0.2.1 port 22 ssh2", None, "Invalid user bob from h"])
    programs = pa.array([None, "sshd", "sshd"], pa.string())
    assert_same_fields(programs.to_pylist(), messages.to_pylist())
    assert_same_fields([None, None], [None, None])
    assert_same_fields(["sshd", None], ["", ""])
    fields = auth_fields(programs, messages)  # a null program is no sshd: the first line matches no rule
    assert fields["user.name"].to_pylist() == [None, None, "bob"]
    with pytest.raises(ValueError, match="offsets"):
        native.match(None, b"\x00" * 4, b"", 0, None, b"\x00" * 8, b"", 0, 2)
    with pytest.raises(ValueError, match="outside the data buffer"):
        native.match(None, b"\x00" * 12, b"", 0, None, (b"\x00" * 4) + (b"\x09" + b"\x00" * 3) * 2, b"short", 0, 2)


def _test_strings() -> list[str]:
    """Every string constant of the collector tests (implicit concatenations are one constant)."""
    found: dict[str, None] = {}
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.strip():
                found[node.value.encode("utf-8", "replace").decode()] = None  # lone surrogates are no UTF-8
    return list(found)


def _messages_of(text: str) -> Iterator[str]:
    """The string, and what follows each `: ` in it (the message of a syslog line, a field's value)."""
    yield text
    start = 0
    while (found := text.find(": ", start)) >= 0:
        yield text[found + 2:]
        start = found + 1


def test_every_string_of_the_collector_tests_both_ways() -> None:
    strings = _test_strings()
    assert len(strings) > 1000
    messages = [message for text in strings for line in text.splitlines() or [text] for message in _messages_of(line)]
    for program in PROGRAMS:
        assert_same_fields([program] * len(messages), messages)
    lines = [line for text in strings for line in text.splitlines() if line.strip()]
    for start in range(0, len(lines), 2000):
        assert_same_parse(lines[start:start + 2000])


@pytest.mark.parametrize("name", ["OpenSSH_2k.log", "Apache_2k.log"])
def test_loghub_samples_both_ways(corpora: Path, name: str) -> None:
    lines = (corpora / "loghub" / name).read_text(errors="replace").splitlines()
    assert_same_parse(lines)
    assert_same_parse([f"<38>{line}" for line in lines])


# One message of each rule (by its number in RULES), with its program: the mutations below miss it in every way.
EXAMPLES: list[tuple[str, str]] = [
    ("sshd", "Failed password for invalid user admin from 192.0.2.7 port 2222 ssh2: RSA SHA256:abc"),
    ("sshd", "Accepted publickey for alice from 2001:db8::7 port 22 ssh2: ED25519 SHA256:x"),
    ("sshd", "Invalid user oracle from 192.0.2.7 port 4000"),
    ("sshd", "Illegal user test from 192.0.2.7"),
    ("sshd", "Received disconnect from 192.0.2.7 port 50000:11: Bye Bye"),
    ("sshd", "Disconnected from invalid user bob 192.0.2.7 port 22 [preauth]"),
    ("sshd-session", "Connection closed by authenticating user root 192.0.2.7 port 22 [preauth]"),
    ("sshd", "Connection reset by invalid user x 192.0.2.7 port 22"),
    ("sshd", "Disconnected from user alice 192.0.2.7 port 22"),
    ("sshd", "Connection closed by 192.0.2.7 port 22 [preauth]"),
    ("sshd", "Connection reset by host.example.org"),
    ("sshd", "Disconnecting invalid user bob 192.0.2.7 port 22: Too many authentication failures [preauth]"),
    ("sshd", "Disconnecting: Too many authentication failures for invalid user admin [preauth]"),
    ("sshd", "Disconnecting user alice 2001:db8::7 port 22: Change of username not allowed"),
    ("sshd", "Did not receive identification string from 192.0.2.7 port 5000"),
    ("sshd", "error: maximum authentication attempts exceeded for invalid user root from 192.0.2.7 port 22 ssh2"),
    ("sshd", "error: PAM: Authentication failure for illegal user bob from host.example.org"),
    ("sshd", "User bob from 192.0.2.7 not allowed because not listed in AllowUsers"),
    ("sshd", "input_userauth_request: invalid user test [preauth]"),
    ("sshd", "Unable to negotiate with 192.0.2.7 port 22: no matching key exchange method found."),
    ("sshd", "reverse mapping checking getaddrinfo for host.example [192.0.2.7] failed - POSSIBLE BREAK-IN ATTEMPT!"),
    ("dropbear", "Bad password attempt for 'root' from 192.0.2.7:40101"),
    ("dropbear", "Login attempt for nonexistent user 'x' from 192.0.2.7:40101"),
    ("dropbear", "Pubkey auth succeeded for 'root' with key md5 0a:0b from 192.0.2.7:40101"),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.7  "
             "user=root"),
    ("sudo", "pam_unix(sudo:auth): authentication failures; tty=/dev/pts/0 rhost=host.example user=alice"),
    ("su", "pam_authenticate: Authentication failure"),
    ("cron", "pam_unix(cron:session): session opened for user alice(uid=1000) by bob(uid=0)"),
    ("sshd", "pam_unix(sshd:session): session closed for user alice"),
    ("su", "FAILED SU (to root) alice on pts/0"),
    ("su", "FAILED su for root by alice"),
    ("su", "BAD SU alice to root on /dev/ttyp0"),
    ("su", "- pts/0 alice:root"),
    ("su", "+ pts/0 alice:root"),
    ("su", "(to root) alice on pts/0"),
    ("su", "Successful su for root by alice"),
    ("sudo", "   alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/sh"),
    ("sudo", "alice : a password is required ; PWD=/home/alice ; USER=root ; COMMAND=/bin/ls"),
    ("sudo", "bob : user NOT in sudoers ; TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/ls"),
    ("sudo", "alice : some note ; TTY=pts/0 ; PWD=/home/a ; USER=root ; ENV=x ; COMMAND=/usr/bin/apt update"),
    ("login", "FAILED LOGIN 1 FROM 192.0.2.7 FOR root, Authentication failure"),
    ("login", "FAILED LOGIN (1) on '/dev/tty1' from 'host.example' FOR 'root', Authentication failure"),
    ("login", "TOO MANY LOGIN TRIES (5) FROM 192.0.2.7 on '/dev/pts/0' FOR 'root', Authentication failure"),
    ("login", "2 LOGIN FAILURES FROM 192.0.2.7, root"),
    ("login", "invalid password for 'root' on '/dev/tty1' from '192.0.2.7'"),
    ("login", "LOGIN ON tty1 BY alice FROM 192.0.2.7"),
    ("login", "login on tty1 as alice"),
    ("unix_chkpwd", "password check failed for user (alice)"),
]


def _mutations(text: str) -> Iterator[str]:
    """Near misses of a message: cut at every place, a character dropped or doubled, a word dropped, doubled or
    swapped with the next, a space doubled, wrapped as sshd and syslog daemons wrap messages."""
    for at in range(len(text) + 1):
        yield text[:at]
        yield text[:at] + text[at + 1:]
        yield text[:at] + text[at:at + 1] * 2 + text[at + 1:]
    words = text.split(" ")
    for at in range(len(words)):
        yield " ".join(words[:at] + words[at + 1:])
        yield " ".join(words[:at + 1] + words[at:])
        yield " ".join(words[:at] + words[at + 1:at + 2] + words[at:at + 1] + words[at + 2:])
        yield " ".join(words[:at]) + "  " + " ".join(words[at:])
    pieces = (":", "::1", "'", ")", "(", ",", " ", " ; ", "COMMAND=", " port 22", ":22", "[preauth]", "user=",
              "rhost=", " from ", "ssh2", "1", "]", "-")
    for at in range(len(words) + 1):
        for piece in pieces:
            yield " ".join(words[:at]) + piece + " ".join(words[at:])
            yield " ".join([*words[:at], piece, *words[at + 1:]])
    for address in ("::1", "fe80::1%eth0", "a:b", "1:2:3", ":", "[192.0.2.8]", "x y"):
        yield text.replace("192.0.2.7", address).replace("host.example", address)
    yield from (f"message repeated 3 times: [ {text}]", f"message repeated 3 times: [{text} ]", f"{text} [preauth]",
                f"{text}[preauth]", f" {text}", f"{text} ", f"{text}\t", f"{text}\u00e9")


def test_each_rule_has_its_example() -> None:
    assert len(EXAMPLES) == len(RULES)
    programs = pa.array([program for program, _ in EXAMPLES])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NATIVE_ENV, "0")
        _, matched = _match(programs, pa.array([text for _, text in EXAMPLES]))
    assert matched.to_pylist() == list(range(len(RULES)))


@pytest.mark.parametrize(("program", "text"), EXAMPLES, ids=[f"rule-{n}" for n in range(len(EXAMPLES))])
def test_near_misses_of_each_rule_both_ways(program: str, text: str) -> None:
    messages = list(dict.fromkeys(_mutations(text)))
    for other in dict.fromkeys([program, "sshd", "cron"]):
        assert_same_fields([other] * len(messages), messages)


# Where a pattern's backtracking decides: lazy runs, the last or first `:`, optional groups given up.
TRICKY = [
    "Received disconnect from ::1: 11: bye", "Received disconnect from :x port 22:",
    "Received disconnect from a port 2", "Failed password for invalid user from from 192.0.2.7 port 22 ssh2",
    "Failed password for root from 192.0.2.7 port 22 ssh",
    "Failed password for invalid user  from 192.0.2.7 port 22 ssh3", "Failed none for a from b port 1 from c port 2",
    "Failed password for root from 192.0.2.7 port 22: ", "Failed password for root from 192.0.2.7 port 22 ssh2: x",
    "Invalid user a from b from c port 1", "Invalid user  from b port", "Illegal user x from  port 22",
    "Disconnecting: Too many authentication failures for invalid user  x", "Disconnecting user bob fe80::1: Too many",
    "Unable to negotiate with 2001:db8::7: no matching key exchange method found.", "Unable to negotiate with :",
    "Disconnecting authenticating user a 1:2 port x: y", "Disconnecting a:b port 22:x",
    "alice : COMMAND=/bin/sh ; PWD=/ ; USER=root ; x", "alice : x ; PWD=/ ; USER=root ;x ; USER=bob ; COMMAND=ls",
    "alice : TTY=x ; PWD=/ ; USER=root ; COMMAND=", "alice : TTY=x y ; PWD=/ ; USER=root ; COMMAND=",
    "alice : 3 incorrect password attempts ; TTY= ; PWD= ; USER=r ;", "alice : 3 incorrect password attempt ; PWD=",
    "x" + " ; " * 40 + "PWD=/ ; USER=root ; COMMAND=x", "alice :" + " ; " * 40 + "PWD=/ ; USER=root ; COMMAND=x",
    "pam_unix(x:auth): authentication failure; logname= uid= euid= tty= ruser= rhost=", "authentication failure;",
    "authentication failure; authentication failures; logname= uid=0 euid=0 tty= ruser=a rhost=b user=",
    "authentication failures;x rhost= user=c", "authentication failuresx; rhost=a", "a rhost=b authentication failure;",
    "session opened for user (uid=0) session opened for user bob by", "session opened for user a(uid=) by b",
    "session closed for user  session closed for user z", "Password auth succeeded for 'a' from b from c:1",
    "Pubkey auth succeeded for 'a'x from b:1:2", "Bad password attempt for 'a' from :1",
    "Bad password attempt for 'a' from a:",
    "TOO MANY LOGIN TRIES (5) FOR ''root'',", "TOO MANY LOGIN TRIES (5) FROM a on 'b' FOR root',",
    "FAILED LOGIN (1) on 'x' from 'y FOR 'z'", "1 LOGIN FAILURE ON x, y z", "12 LOGIN FAILURES FROM a,b, c",
    "message repeated 2 times: [ ]", "message repeated 2 times: []", "message repeated x times: [ Failed]",
    "message repeated 2 times: [ Invalid user a from b] [preauth]", "  [preauth]", "[preauth]", "x\t[preauth]",
]


def test_where_backtracking_decides_both_ways() -> None:
    for program in PROGRAMS:
        assert_same_fields([program] * len(TRICKY), TRICKY)


# The rules' own words, so that fuzzed messages come near every rule and miss it in every way.
WORDS = sorted({
    "Failed", "Accepted", "Invalid", "Illegal", "password", "publickey", "none", "for", "invalid user", "illegal user",
    "from", "port", "ssh1", "ssh2", ": ", ":", " ", "  ", "[preauth]", " [preauth]", "message repeated 2 times: [",
    "message repeated ", " times: [", "]", "[", "Received disconnect from", "Disconnected from",
    "Connection closed by", "Connection reset by", "authenticating user", "user", "Disconnecting",
    "Disconnecting: Too many authentication failures", "Did not receive identification string from",
    "error: maximum authentication attempts exceeded for", "error: PAM: ", "Authentication", "authentication",
    "failure", "error", "User", "not allowed because", "input_userauth_request: ", "Unable to negotiate with",
    "reverse mapping checking getaddrinfo for", "failed", "Bad password attempt for '", "'",
    "Login attempt for nonexistent user", "Password", "Pubkey", "auth succeeded for", "authentication failure",
    "authentication failures", ";", "; logname=", " uid=0", " euid=0", " tty=ssh", " ruser=", " rhost=", " user=",
    "user=", "rhost=", "pam_authenticate: Authentication failure", "session opened for user ", "(uid=0)", " by ",
    "session closed for user ", "FAILED SU (to ", ")", "(", " on ", "FAILED su for", "BAD SU", " to ", "- ", "+ ",
    "(to ", "Successful su for", " : ", "3", "incorrect password attempts", "incorrect password attempt",
    " ; ", "TTY=pts/0", "PWD=/home/a", "USER=root", "COMMAND=/bin/sh", "a password is required",
    "user NOT in sudoers", "command not allowed", "user NOT authorized on host", "FAILED LOGIN ", "SESSION ",
    "FROM ", "FOR ", "FOR '", ",", "(1)", "TOO MANY LOGIN TRIES (5) ", "LOGIN FAILURES", "LOGIN FAILURE", "ON ",
    "invalid password for '", " on '", " from '", "LOGIN ON ", " BY ", " FROM ", "login on ", " as ",
    "password check failed for user (", "root", "alice", "192.0.2.7", "::1", "2001:db8::7", "host.example.org",
    "UNKNOWN", "tty1", "/dev/pts/0", "22", "99999999999999999999", "é", "\t", "\u00a0", "\u2003", "\n", "x",
})
near_miss = st.lists(st.sampled_from(WORDS), max_size=14).map("".join)
message = st.one_of(near_miss, st.text(max_size=60), near_miss.map(lambda text: text.replace(" ", "")))
batch = st.lists(st.tuples(st.sampled_from(PROGRAMS), message), min_size=1, max_size=40)


@FUZZ
@given(batch)
def test_fuzzed_messages_both_ways(rows: list[tuple[str | None, str]]) -> None:
    assert_same_fields([program for program, _ in rows], [text for _, text in rows])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["sshd", "su", "sudo", "login", "dropbear", "cron"]), message),
                min_size=1, max_size=20))
def test_fuzzed_lines_parse_and_store_the_same_both_ways(rows: list[tuple[str, str]]) -> None:
    assert_same_parse([f"<38>Mar 12 10:01:02 host {program}[7]: {text}" for program, text in rows])
