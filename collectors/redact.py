"""Secret redaction, applied before anything is stored (events and dead letters alike).

Structured records (CloudTrail) are redacted by key: a key whose lower-cased name is in
`SECRET_KEYS`, or any key other than the identifying ones inside a `credentials` object, has its value
replaced by `REDACTED`. Free text (syslog messages, unparsable JSON kept as a dead letter) is redacted
by pattern: `password=...`, `"sessionToken": "..."` and the like.

Access key ids are kept: they identify a key rather than grant its use, and detections rely on them.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from collectors import native
from collectors.errors import UnparsableRecordError

REDACTED = "[REDACTED]"
# orjson writes at most 254 levels of nesting: a deeper record could not be stored as JSON text.
MAX_JSON_DEPTH = 254
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels: it cannot be stored"

# Lower-cased keys whose values are secrets wherever they appear.
SECRET_KEYS: frozenset[str] = frozenset({
    "sessiontoken", "secretaccesskey", "secretkey", "password", "newpassword", "oldpassword", "currentpassword",
    "passworddata", "privatekey", "privatekeymaterial", "secretstring", "secretbinary", "clientsecret",
    "accesstoken", "refreshtoken", "idtoken", "tokenvalue", "apikey", "authorization",
})

# Keys inside a `credentials` object that identify rather than grant access; everything else is redacted.
_CREDENTIAL_PUBLIC_KEYS: frozenset[str] = frozenset({"accesskeyid", "expiration", "arn", "username"})

_SECRET_KEY_ALTERNATION = "|".join(sorted(SECRET_KEYS, key=len, reverse=True))
# Every name in SECRET_KEYS (and `credentials`) holds one of these: a record holding none has nothing to redact.
_SECRET_STEMS = (b"token", b"secret", b"passw", b"privatekey", b"credentials", b"authorization", b"apikey")
assert all(any(stem.decode() in key for stem in _SECRET_STEMS) for key in (*SECRET_KEYS, "credentials"))
# "sessionToken": "..." inside JSON text (also escaped JSON inside a JSON string).
_JSON_SECRET = re.compile(
    rf'(?i)(\\?"(?:{_SECRET_KEY_ALTERNATION})\\?"\s*:\s*)(\\?")((?:[^"\\]|\\.)*?)(\\?"|\\?$)'
)
# password=hunter2, pass: x, token="a b" in free text.
_TEXT_SECRET = re.compile(
    r"(?i)\b((?:password|passwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)\s*[=:]\s*)"
    r"(\"[^\"]*\"|'[^']*'|[^\s,;&]+)"
)


def redact_record(value: Any, *, in_credentials: bool = False, depth: int = 0) -> Any:
    """A copy of a JSON value with secret values replaced by `REDACTED` (by key, at any depth).

    Raises `UnparsableRecordError` for a value nested deeper than `MAX_JSON_DEPTH` (it could not be stored).
    """
    if depth > MAX_JSON_DEPTH:
        raise UnparsableRecordError(TOO_DEEP)
    if isinstance(value, dict):
        redacted: dict[str, Any] = {}
        for key, item in value.items():
            lowered = str(key).lower()
            if item is not None and (
                lowered in SECRET_KEYS
                or (in_credentials and lowered not in _CREDENTIAL_PUBLIC_KEYS and not isinstance(item, dict | list))
            ):
                redacted[key] = REDACTED
            else:
                redacted[key] = redact_record(item, in_credentials=lowered == "credentials", depth=depth + 1)
        return redacted
    if isinstance(value, list):
        return [redact_record(item, in_credentials=in_credentials, depth=depth + 1) for item in value]
    return value


def may_hold_secrets(raw: bytes) -> bool:
    """False when a JSON record's text names no secret key and no `credentials` object, so `redact_record`
    would change nothing (most records: checking the bytes is much cheaper than walking the record)."""
    if b"\\u" in raw:  # an escaped key name could hide one
        return True
    return any(map(raw.lower().__contains__, _SECRET_STEMS))


def redact_json_text(text: str) -> str:
    """Redact `"secretKey": "value"` pairs in JSON text that could not be parsed."""
    return _JSON_SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}{m.group(4)}", text)


def redact_text(text: str) -> str:
    """Redact `password=value`-style secrets in free text (syslog messages)."""
    return _TEXT_SECRET.sub(lambda m: f"{m.group(1)}{REDACTED}", text)


# The same patterns in RE2 syntax for Arrow's regex kernels (linear time); Python's `re` and RE2 agree on them.
_TEXT_SECRET_RE2 = (r"(?i)\b((?:password|passwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)"
                    r"\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&]+)")


# What every secret `_TEXT_SECRET_RE2` finds contains, without its word boundary: a batch's values lie end to end
# in one buffer, where a value ending in a letter would hide the boundary before a secret starting the next one.
# Searched as UTF-8 text, so that RE2 folds case as on the lines themselves (`paſsword=`, `toKen=`).
_TEXT_SECRET_ANYWHERE_RE2 = (r"(?i)(?:password|passwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)"
                             r"\s*[=:]")


def redact_text_column(texts: pa.Array) -> pa.Array:
    """`redact_text` for a column of free text, touching only the rows that hold something to redact.

    With `collectors._redact` (`collectors/native/redact.c`), the expression runs only on the lines its pre-test
    reports, a proven superset of the lines it matches (see the C source); otherwise the whole batch is searched
    once first, as one string: most batches hold no secret at all.
    """
    if not len(texts):
        return texts
    plain = texts.offset == 0 and pa.types.is_string(texts.type)
    compiled = native.load("redact") if pa.types.is_string(texts.type) else None
    _, offsets, data = texts.buffers()[:3] if compiled is not None else (None, None, None)
    if compiled is not None and offsets is not None:
        count, bitmap = compiled.candidates(offsets, data or b"", texts.offset, len(texts))
        if not count:
            return texts
        candidates = pa.Array.from_buffers(pa.bool_(), len(texts), [None, pa.py_buffer(bitmap)])
        found = pc.fill_null(pc.match_substring_regex(texts.filter(candidates), _TEXT_SECRET_RE2), False)
        if not pc.any(found).as_py():
            return texts
        hits = pc.replace_with_mask(candidates, candidates, found)
    else:
        data = texts.buffers()[2] if plain else None
        if data is not None and data.size < 2**31:  # bytes outside the values could only add a false alarm
            offsets = pa.array([0, data.size], pa.int32()).buffers()[1]
            whole = pa.Array.from_buffers(pa.string(), 1, [None, offsets, data])  # valid UTF-8: the lines are
            if not pc.any(pc.match_substring_regex(whole, _TEXT_SECRET_ANYWHERE_RE2)).as_py():
                return texts
        hits = pc.fill_null(pc.match_substring_regex(texts, _TEXT_SECRET_RE2), False)
        if not pc.any(hits).as_py():
            return texts
    redacted = pc.replace_substring_regex(texts.filter(hits), _TEXT_SECRET_RE2, rf"\1{REDACTED}")
    return pc.replace_with_mask(texts, hits, redacted)
