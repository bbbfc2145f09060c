"""Live intake end to end: syslog over TCP from a separate sender process, through `soc collect` (listener,
spool, drainer) into the event store, beside rsyslog receiving the same stream into a file; and `soc ingest`
of the same lines as a file.

    python -m bench.ingest                      # 1,000,000 lines
    python -m bench.ingest --lines 200000 --skip-rsyslog

Not a test: it prints figures and writes `bench/out/ingest/results.json`. Lines are loghub's
`OpenSSH_2k.log` (../shared/corpora) in RFC 3164 form with a PRI, each copy with its own process id so every
line is a distinct event (a real stream does not repeat a line word for word).

- messages/s: lines / wall seconds from the sender's first byte to the last event in the store (the
  collector's listener, spool and drainer all inside that span);
- per core: lines / CPU-seconds of the receiving process (user + system, all its threads), so the figure does
  not depend on what else the machine runs; the target is >= 50,000;
- receipt -> stored: per event, its Parquet file's final time (the file is renamed into place when the store
  commits it) minus its `event.ingested` (the collector's receipt time): p50 and p99;
- peak memory: the receiving process's VmHWM.
`soc ingest` of the file is counted whole (a process started for the file), and also past its start-up
(interpreter, imports, store opened: an ingest of an empty file), which is what `soc collect`'s figure
counts.
rsyslog (`rsyslogd -n` with `imtcp` and `omfile`) is the practical ceiling for receiving the same bytes. Its
CPU for a million lines is about a second, and it varied twofold between quiet runs, so it runs `--rsyslog-runs`
times (3) and the run of median CPU is the ceiling; the ratio printed is per CPU-second, the issue's measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq

from citysoc.settings import Settings
from citysoc.store import ParquetEventStore
from citysoc.wiring import case_client

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "ingest"
CORPORA = REPO.parent / "shared" / "corpora"
TENANT = "bench-council"
_PID = re.compile(r"sshd\[\d+\]")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def build_lines(count: int, corpora: Path) -> Path:
    """`count` RFC 3164 lines (PRI 38 = auth.info) from loghub's OpenSSH log, each with its own pid."""
    path = OUT / f"stream-{count}.log"
    if path.exists():
        return path
    template = [line for line in (corpora / "loghub" / "OpenSSH_2k.log").read_text().splitlines() if line]
    OUT.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for index in range(count):
            line = template[index % len(template)]
            out.write("<38>" + _PID.sub(f"sshd[{100000 + index}]", line, count=1) + "\n")
    return path


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


SENDER = """
import socket, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
data = open(path, "rb").read()
sock = socket.create_connection((host, port))
start = time.time()
view = memoryview(data)
for offset in range(0, len(view), 1 << 20):
    sock.sendall(view[offset:offset + (1 << 20)])
sock.shutdown(socket.SHUT_WR)
sock.recv(1)
print(start, time.time())
"""


def send(port: int, path: Path) -> tuple[float, float]:
    """Send the file over TCP from a separate process; (first byte, last byte) wall times."""
    done = subprocess.run([sys.executable, "-c", SENDER, "127.0.0.1", str(port), str(path)], check=True,
                          capture_output=True, text=True, timeout=3600)
    start, end = (float(value) for value in done.stdout.split())
    return start, end


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Collector:
    """`soc collect --syslog-tcp` on a fresh home with one tenant and a syslog-tcp source for 127.0.0.1."""

    def __init__(self, home: Path, port: int) -> None:
        shutil.rmtree(home, ignore_errors=True)
        settings = Settings(home=home)
        with case_client(settings, role="admin") as client:
            client.add_tenant(TENANT, "Bench Council")
            client.add_source(tenant_id=TENANT, kind="syslog-tcp", name="bench", networks=["127.0.0.1"])
        env = {**os.environ, "SOC_HOME": str(home), "SOC_LOG_FORMAT": "json", "SOC_LOG_LEVEL": "INFO"}
        self.process = subprocess.Popen([sys.executable, "-m", "citysoc.cli", "collect", "--syslog-tcp",
                                         f"127.0.0.1:{port}"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        self.ready = threading.Event()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        if not self.ready.wait(120):
            raise SystemExit("soc collect did not get ready:\n" + "\n".join(self.log[-30:]))
        self.store = ParquetEventStore(settings.events_dir)

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line.rstrip())
            if '"intake ready"' in line:
                self.ready.set()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=300)


def wait_stored(store: ParquetEventStore, count: int, *, timeout: float) -> float:
    """The wall time at which the store holds `count` events of the tenant."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if store.stored(tenant=TENANT) >= count:
            return time.time()
        time.sleep(0.05)
    raise SystemExit(f"only {store.stored(tenant=TENANT)} of {count} events stored after {timeout:.0f}s")


def latencies(store: ParquetEventStore) -> list[float]:
    """Per event: its file's final time (the store renames a file into place when it commits it) minus the
    event's `event.ingested`, in seconds."""
    found: list[float] = []
    for dataset in store.datasets():
        for folder in store.partitions(dataset):
            for file in folder.glob("*.parquet"):
                ingested = pq.read_table(file, columns=["event.ingested"]).column(0)
                stored_at = file.stat().st_mtime
                found.extend(stored_at - micros / 1e6 for micros in pc.cast(ingested, "int64").to_pylist()
                             if micros is not None)
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


def bench_collect(lines: Path, count: int) -> dict[str, Any]:
    port = free_port()
    collector = Collector(OUT / "home", port)
    try:
        before = proc_cpu(collector.process.pid)
        start, sent = send(port, lines)
        stored = wait_stored(collector.store, count, timeout=3600)
        cpu = proc_cpu(collector.process.pid) - before
        peak = proc_peak_mb(collector.process.pid)
    finally:
        collector.stop()
    lag = latencies(collector.store)
    wall = stored - start
    return {"lines": count, "wall_s": wall, "sent_s": sent - start, "cpu_s": cpu, "per_s": count / wall,
            "per_cpu_s": count / cpu if cpu else float("inf"), "peak_mb": peak,
            "receipt_to_stored_p50_s": percentile(lag, 0.50), "receipt_to_stored_p99_s": percentile(lag, 0.99)}


RSYSLOG_CONF = """
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
template(name="raw" type="string" string="%rawmsg%\\n")
action(type="omfile" file="{out}" template="raw")
"""


def bench_rsyslog(lines: Path, count: int) -> dict[str, Any]:
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    if not Path(rsyslogd).exists():
        return {"skipped": "rsyslogd is not installed (make setup installs it as root)"}
    folder = OUT / "rsyslog"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    port, out = free_port(), folder / "received.log"
    (folder / "rsyslog.conf").write_text(RSYSLOG_CONF.format(port=port, out=out))
    process = subprocess.Popen([rsyslogd, "-n", "-f", str(folder / "rsyslog.conf"), "-i", str(folder / "pid")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 30
        while time.time() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        before = proc_cpu(process.pid)
        start, _ = send(port, lines)
        deadline = time.time() + 3600
        while time.time() < deadline:
            if out.exists() and _count_lines(out) >= count:
                break
            time.sleep(0.05)
        done = time.time()
        cpu = proc_cpu(process.pid) - before
        peak = proc_peak_mb(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    wall = done - start
    return {"lines": count, "wall_s": wall, "cpu_s": cpu, "per_s": count / wall,
            "per_cpu_s": count / cpu if cpu else float("inf"), "peak_mb": peak}


def bench_rsyslog_median(lines: Path, count: int, runs: int) -> dict[str, Any]:
    """`bench_rsyslog` `runs` times: the run of median CPU, with every run's CPU seconds beside it."""
    results = [bench_rsyslog(lines, count) for _ in range(max(1, runs))]
    if any("skipped" in result for result in results):
        return results[0]
    ordered = sorted(results, key=lambda result: result["cpu_s"])
    return {**ordered[len(ordered) // 2], "cpu_s_runs": [result["cpu_s"] for result in results]}


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _soc_ingest(home: Path, path: Path) -> tuple[float, float, float]:
    """`soc ingest` of one file as a child process: (wall s, CPU s, peak MB)."""
    env = {**os.environ, "SOC_HOME": str(home)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.time()
    subprocess.run([sys.executable, "-m", "citysoc.cli", "ingest", "--tenant", TENANT, "--source", "syslog",
                    "--year", "2024", str(path)], env=env, cwd=REPO, check=True, capture_output=True, timeout=3600)
    wall = time.time() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), after.ru_maxrss / 1024


def bench_file_ingest(lines: Path, count: int) -> dict[str, Any]:
    """The whole `soc ingest` process, start-up included; its start-up (interpreter, imports, opening the
    store, on an empty file) is measured apart, so the figure past it is comparable with `soc collect`'s,
    which is counted from the moment the collector is ready."""
    home = OUT / "ingest-home"
    shutil.rmtree(home, ignore_errors=True)
    with case_client(Settings(home=home), role="admin") as client:
        client.add_tenant(TENANT, "Bench Council")
    empty = OUT / "empty.log"
    empty.write_bytes(b"")
    _, startup_cpu, _ = _soc_ingest(home, empty)
    wall, cpu, peak = _soc_ingest(home, lines)
    stored = ParquetEventStore(Settings(home=home).events_dir).stored(tenant=TENANT)
    past_startup = cpu - startup_cpu
    return {"lines": count, "stored": stored, "wall_s": wall, "cpu_s": cpu, "per_s": count / wall,
            "per_cpu_s": count / cpu, "peak_mb": peak, "startup_cpu_s": startup_cpu,
            "per_cpu_s_past_startup": count / past_startup if past_startup > 0 else float("inf")}


def rows(results: dict[str, Any]) -> Iterator[str]:
    yield f"{'path':<44}{'msg/s':>10}{'per CPU-s':>12}{'CPU s':>8}{'peak MB':>9}  receipt->stored p50/p99"
    for name, label in (("collect", "soc collect (TCP -> spool -> store)"), ("rsyslog", "rsyslog imtcp -> file"),
                        ("file_ingest", "soc ingest (file -> store)")):
        figure = results.get(name, {})
        if "skipped" in figure or not figure:
            yield f"{label:<44}skipped: {figure.get('skipped', 'not run')}"
            continue
        lag = ""
        if "receipt_to_stored_p99_s" in figure:
            lag = f"  {figure['receipt_to_stored_p50_s']:.2f} / {figure['receipt_to_stored_p99_s']:.2f} s"
        yield (f"{label:<44}{figure['per_s']:>10,.0f}{figure['per_cpu_s']:>12,.0f}{figure['cpu_s']:>8.2f}"
               f"{figure['peak_mb']:>9.0f}{lag}")
        if "startup_cpu_s" in figure:
            yield (f"{'  past its start-up (' + format(figure['startup_cpu_s'], '.1f') + ' CPU s)':<54}"
                   f"{figure['per_cpu_s_past_startup']:>12,.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--skip-rsyslog", action="store_true")
    parser.add_argument("--rsyslog-runs", type=int, default=3)
    parser.add_argument("--skip-file", action="store_true")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    args = parser.parse_args(argv)
    lines = build_lines(args.lines, args.corpora)
    results: dict[str, Any] = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                           "python": platform.python_version(),
                                           "date": time.strftime("%Y-%m-%d")}, "lines": args.lines}
    results["collect"] = bench_collect(lines, args.lines)
    if not args.skip_rsyslog:
        results["rsyslog"] = bench_rsyslog_median(lines, args.lines, args.rsyslog_runs)
    if not args.skip_file:
        results["file_ingest"] = bench_file_ingest(lines, args.lines)
    ceiling = results.get("rsyslog", {}).get("per_s")
    if ceiling:
        results["collect"]["rsyslog_ratio"] = ceiling / results["collect"]["per_s"]
        results["collect"]["rsyslog_cpu_ratio"] = results["rsyslog"]["per_cpu_s"] / results["collect"]["per_cpu_s"]
    print(f"{args.lines:,} syslog lines, {results['machine']['cpu']}, {results['machine']['cores']} cores, "
          f"{results['machine']['date']}")
    for line in rows(results):
        print(line)
    if ceiling:
        runs = ", ".join(f"{cpu:.2f}" for cpu in results["rsyslog"]["cpu_s_runs"])
        print(f"rsyslog CPU s per run: {runs} (the median's run is the ceiling)")
        print(f"rsyslog / soc collect per CPU-second: {results['collect']['rsyslog_cpu_ratio']:.1f}x "
              f"(target: within 3x); wall throughput: {results['collect']['rsyslog_ratio']:.1f}x")
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
