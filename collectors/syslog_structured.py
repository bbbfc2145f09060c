"""RFC 5424 structured data: `[id param="value" ...][id2 ...] message` -> ({id: {param: value}}, message).

Record by record (few messages carry any). The expressions are linear: a parameter value is a run of
characters other than `"` and `\\`, or escape pairs, so each value can match in one way only.
"""

from __future__ import annotations

import re

from collectors.errors import UnparsableRecordError

_SD_ELEMENT = re.compile(r'\[(?P<id>[^\s\]=]+)(?P<params>(?: [^\s=\]]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^\s=\]]+)="((?:[^"\\]|\\.)*)"')
_SD_UNESCAPE = re.compile(r'\\(["\\\]])')


def structured_data(rest: str) -> tuple[dict[str, dict[str, str]], str]:
    """Split RFC 5424 `STRUCTURED-DATA MSG` (starting with `[`) into its elements and the message."""
    elements: dict[str, dict[str, str]] = {}
    position = 0
    while True:
        match = _SD_ELEMENT.match(rest, position)
        if not match:
            break
        elements[match.group("id")] = {
            name: _SD_UNESCAPE.sub(r"\1", value) for name, value in _SD_PARAM.findall(match.group("params"))
        }
        position = match.end()
    if not elements:
        raise UnparsableRecordError("RFC 5424 line whose structured data is neither '-' nor [id param=\"value\"]")
    return elements, rest[position:].removeprefix(" ")
