"""Write tests/file_seconds.json, each test file's seconds (setup, call and teardown of its tests added up), from
a JUnit XML report: `pytest --junitxml=report.xml ...` then `python -m tests.file_seconds report.xml`. The
conftest hands the longest files to the xdist workers first; the figures only order the files."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def file_of(classname: str) -> str | None:
    """`tests.collectors.test_spool.TestX` -> `tests/collectors/test_spool.py`: the longest dotted prefix that is
    a file."""
    parts = classname.split(".")
    for end in range(len(parts), 0, -1):
        path = Path(*parts[:end]).with_suffix(".py")
        if (REPO / path).is_file():
            return path.as_posix()
    return None


def file_seconds(report: Path) -> dict[str, float]:
    totals: dict[str, float] = {}
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = file_of(case.get("classname", ""))
        if name is not None:
            totals[name] = totals.get(name, 0.0) + float(case.get("time", "0"))
    return {name: round(seconds, 1) for name, seconds in sorted(totals.items(), key=lambda pair: -pair[1])}


if __name__ == "__main__":
    target = REPO / "tests" / "file_seconds.json"
    target.write_text(json.dumps(file_seconds(Path(sys.argv[1])), indent=0) + "\n")
    print(f"{target}: {len(json.loads(target.read_text()))} files")
