"""Parse-only throughput of the collectors: lines (records) per CPU-second, new parsers beside an older commit's.

    python -m bench.ingest_parse                      # 1,000,000 OpenSSH lines, 200,000 CloudTrail records
    python -m bench.ingest_parse --lines 200000 --baseline 35daf65

Inputs are built from `../shared/corpora` under `bench/out/`: loghub's `OpenSSH_2k.log` replicated to
`--lines` lines, each copy moved to another day (a real log does not repeat a line word for word 500 times;
`--verbatim` replicates it as it is), and the Stratus Red Team CloudTrail records replicated to
`--records` NDJSON records with fresh eventIDs.

"Per core" is per CPU-second of this process (all its threads): records / (user + system CPU time), so the
figure does not depend on what else runs on the machine. Reading (`records(path)`: lines or JSON records
as `RawRecord`s) and parsing (`parse_records` in batches, to Arrow tables in ARROW_SCHEMA with ids) are
timed apart. The baseline is the collectors package of `--baseline` (a commit of this repository, read
with `git archive` into a scratch folder and run in a child process) on the first `--baseline-lines`
lines: its file API (`parse(path)`, records to ECS documents), then also what its store did to those
documents before writing them (`to_row` and `pa.Table.from_pylist`), so both ends are Arrow tables.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tarfile
import tempfile
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import orjson

from citysoc.ids import Occurrences
from collectors import CloudTrailParser, ParserOptions, SyslogParser
from collectors.base import LogParser, batched

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
CORPORA = REPO.parent / "shared" / "corpora"
BASELINE = "35daf65"  # the collectors before parse_records (line-by-line Python parsers)
NOW = datetime(2026, 1, 1, tzinfo=UTC)

_BASELINE_SCRIPT = """
import resource, sys
from datetime import UTC, datetime
from pathlib import Path
import pyarrow as pa
from citysoc.schema import ARROW_SCHEMA, to_row
from collectors.base import ParsedEvent, ParserOptions
from collectors.{module} import {parser}

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

parser = {parser}(ParserOptions(year=2024, now=datetime(2026, 1, 1, tzinfo=UTC)))
started = cpu()
docs = [item.doc for item in parser.parse(Path(sys.argv[1]), tenant="council", source="bench")
        if isinstance(item, ParsedEvent)]
parsed = cpu() - started
started = cpu()
for start in range(0, len(docs), 5000):  # what its store then did with each batch
    pa.Table.from_pylist([to_row(doc) for doc in docs[start:start + 5000]], schema=ARROW_SCHEMA)
print(len(docs), parsed, cpu() - started)
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def openssh_file(lines: int, *, verbatim: bool) -> Path:
    sample = (CORPORA / "loghub" / "OpenSSH_2k.log").read_text().rstrip("\n").split("\n")
    path = OUT / f"openssh-{lines}{'-verbatim' if verbatim else ''}.log"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    first = datetime(2020, 1, 1)
    with path.open("w") as handle:
        for copy in range(-(-lines // len(sample))):
            day = first + timedelta(days=copy)
            stamp = f"{day:%b} {day.day:>2}"
            chunk = sample if verbatim else [stamp + line[6:] for line in sample]
            handle.write("\n".join(chunk[: lines - copy * len(sample)]) + "\n")
    return path


def cloudtrail_file(records: int) -> Path:
    path = OUT / f"cloudtrail-{records}.ndjson"
    if path.exists():
        return path
    OUT.mkdir(parents=True, exist_ok=True)
    sample = [record for file in sorted((CORPORA / "stratus").glob("*.json"))
              for record in json.loads(file.read_text())]
    with path.open("wb") as handle:
        for number in range(records):
            record = dict(sample[number % len(sample)], eventID=f"{number}-{sample[number % len(sample)]['eventID']}")
            handle.write(orjson.dumps(record) + b"\n")
    return path


def measure(parser: LogParser, path: Path, *, batch: int) -> tuple[int, float, float]:
    """(records, CPU seconds reading, CPU seconds parsing)."""
    started = cpu_seconds()
    records = list(parser.records(path))
    read = cpu_seconds() - started
    occurrences = Occurrences()
    events = 0
    started = cpu_seconds()
    for chunk in batched(records, batch):
        parsed = parser.parse_records(chunk, tenant="council", source=parser.name, occurrences=occurrences)
        events += parsed.events
    parse = cpu_seconds() - started
    if events != len(records):
        print(f"  note: {len(records) - events} of {len(records)} records were not events", file=sys.stderr)
    return len(records), read, parse


def baseline(ref: str, module: str, parser: str, path: Path) -> tuple[int, float, float] | None:
    """(events, CPU seconds parsing to documents, CPU seconds turning them into Arrow tables) of the collectors
    at `ref` on `path`; None when `ref` is not in this repository."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "collectors", "citysoc"], capture_output=True)
    if archive.returncode != 0:
        print(f"baseline {ref}: not in this repository ({archive.stderr.decode().strip()}); skipped", file=sys.stderr)
        return None
    with tempfile.TemporaryDirectory(prefix="citysoc-baseline-") as folder:
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        done = subprocess.run([sys.executable, "-c", _BASELINE_SCRIPT.format(module=module, parser=parser),
                               str(path)], capture_output=True, text=True, cwd=folder,
                              env={"PYTHONPATH": folder, "PATH": "/usr/bin:/bin"})
    if done.returncode != 0:
        print(f"baseline {ref} failed:\n{done.stderr[-2000:]}", file=sys.stderr)
        return None
    events, parsed, tabled = done.stdout.split()[-3:]
    return int(events), float(parsed), float(tabled)


def head(path: Path, lines: int) -> Path:
    target = path.with_name(f"{path.stem}-head{lines}{path.suffix}")
    if not target.exists():
        with path.open("rb") as source, target.open("wb") as handle:
            for number, line in enumerate(source):
                if number >= lines:
                    break
                handle.write(line)
    return target


def row(name: str, count: int, seconds: float) -> None:
    print(f"{name:58s} {count:>10,} {seconds:>8.2f} {count / seconds:>12,.0f}")


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--lines", type=int, default=1_000_000)
    options.add_argument("--records", type=int, default=200_000)
    options.add_argument("--batch", type=int, default=20_000, help="records per parse_records call")
    options.add_argument("--baseline", default=BASELINE, help="commit whose parsers to compare with ('' for none)")
    options.add_argument("--baseline-lines", type=int, default=100_000)
    options.add_argument("--verbatim", action="store_true", help="replicate the OpenSSH sample unchanged")
    args = options.parse_args()

    openssh = openssh_file(args.lines, verbatim=args.verbatim)
    trail = cloudtrail_file(args.records)
    print(f"{'':58s} {'records':>10} {'CPU s':>8} {'per CPU-s':>12}")
    count, read, parse = measure(SyslogParser(ParserOptions(year=2024, now=NOW)), openssh, batch=args.batch)
    row(f"syslog   new: read {openssh.name}", count, read)
    row("syslog   new: parse_records", count, parse)
    row("syslog   new: read + parse", count, read + parse)
    count, read, parse = measure(CloudTrailParser(ParserOptions(now=NOW)), trail, batch=5_000)
    row(f"cloudtrail new: read {trail.name}", count, read)
    row("cloudtrail new: parse_records", count, parse)
    row("cloudtrail new: read + parse", count, read + parse)
    if args.baseline:
        for module, parser, path, size in (("syslog", "SyslogParser", openssh, args.baseline_lines),
                                           ("cloudtrail", "CloudTrailParser", trail, args.baseline_lines // 5)):
            result = baseline(args.baseline, module, parser, head(path, size))
            if result is not None:
                count, parsed, tabled = result
                row(f"{module:10s} {args.baseline}: parse(path) to ECS documents", count, parsed)
                row(f"{module:10s} {args.baseline}: ... + to_row + Arrow table", count, parsed + tabled)


if __name__ == "__main__":
    main()
