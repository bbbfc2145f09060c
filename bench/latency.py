"""Live latency: a syslog line accepted by the collector -> a case visible in the case API, through `soc run`.

    python -m bench.latency                         # 30 events, one every 2 s, then 5 bursts of 10
    python -m bench.latency --events 10 --bursts 2 --every 2s

Not a test: it prints figures and writes `bench/out/latency/results.json`. It starts `soc run` (case API,
intake, continuous detection) on a fresh `$SOC_HOME` under `bench/out/latency/`, registers one member
organisation whose syslog-TCP source is 127.0.0.1, waits until every part is up and one warm-up event has made
its case (the first cycle compiles Spark's code), then sends root logins over TCP, each from its own source
address so that each makes a case of its own (`source.ip=...`). An event's latency is from the instant its
line was written to the collector's socket to the first poll (every 0.1 s) of `GET /api/v1/cases` that lists
its case. Single events come at a steady pace; bursts send `--burst-size` lines at once.

The path measured: listener -> spool (fsync) -> drainer -> lake commit -> detection cycle (arrival watermark,
Spark pass over the event-time window around the new events) -> `POST /api/v1/alerts` -> case.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from citysoc.settings import Settings
from citysoc.wiring import bootstrap_keys, case_client

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out" / "latency"
TENANT = "bench-council"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


class LiveSoc:
    """`soc run` in a process group of its own, its output lines read as they come."""

    def __init__(self, home: Path, every: str) -> None:
        soc = Path(sys.executable).parent / "soc"
        self.process = subprocess.Popen(
            [str(soc), "run", "--api", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0", "--every", every],
            env={**os.environ, "SOC_HOME": str(home), "PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log = (home.parent / "soc-run.log").open("w")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.write(line)
            self.log.flush()
            self.lines.put(line)

    def wait_for(self, pattern: str, timeout: float = 600) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise SystemExit(f"soc run exited ({self.process.returncode}); see {self.log.name}") from None
                continue
            if found := re.search(pattern, line):
                return found
        raise SystemExit(f"no {pattern!r} within {timeout}s; see {self.log.name}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def login_line(source_ip: str) -> bytes:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return (f"<38>1 {stamp} web-01 sshd 4242 - - Accepted password for root from {source_ip} port 40022 "
            f"ssh2\n").encode()


class CaseWatcher:
    """Polls the case queue and notes when each group key first appears."""

    def __init__(self, api: str, key: str) -> None:
        self.api = api
        self.client = httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=10)
        self.seen: dict[str, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.is_set():
            cases = self.client.get(f"{self.api}/cases", params={"limit": 1000}).json()
            now = time.monotonic()
            for case in cases:
                self.seen.setdefault(case["group_key"], now)
            self.stop.wait(0.1)

    def wait(self, keys: list[str], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not all(key in self.seen for key in keys):
            if time.monotonic() > deadline:
                raise SystemExit(f"cases for {[k for k in keys if k not in self.seen]} not seen within {timeout}s")
            time.sleep(0.05)


def send(port: int, addresses: list[str]) -> float:
    """Write one line per address on one connection; the instant the last write returned."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sender:
        sender.sendall(b"".join(login_line(address) for address in addresses))
        return time.monotonic()


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p95": ordered[max(0, round(0.95 * len(ordered)) - 1)], "max": ordered[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30, help="single events, one every --gap seconds")
    parser.add_argument("--gap", type=float, default=2.0)
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--burst-size", type=int, default=10)
    parser.add_argument("--every", default="1s", help="soc run's detection cycle interval")
    args = parser.parse_args()

    shutil.rmtree(OUT, ignore_errors=True)
    home = OUT / "home"
    settings = Settings(home=home)
    bootstrap_keys(settings)
    with case_client(settings, role="admin") as client:
        client.add_tenant(TENANT, "Bench Council")
        client.add_source(tenant_id=TENANT, kind="syslog-tcp", name="web-01", networks=["127.0.0.1/32"])
    key = json.loads(settings.secrets_file.read_text())["soc_analyst"]

    started = time.monotonic()
    live = LiveSoc(home, args.every)
    try:
        api = live.wait_for(r"case API on (http://127\.0\.0\.1:\d+/api/v1)").group(1)
        port = int(live.wait_for(r"intake syslog-tcp on 127\.0\.0\.1:(\d+)").group(1))
        live.wait_for(r"\[detection\] detecting every")
        watcher = CaseWatcher(api, key)
        send(port, ["198.51.100.1"])
        watcher.wait(["source.ip=198.51.100.1"], timeout=600)
        print(f"soc run up and warm (first case) after {time.monotonic() - started:.1f} s", flush=True)

        single: list[float] = []
        for number in range(args.events):
            address = f"10.1.{number // 250}.{number % 250 + 1}"
            sent = send(port, [address])
            watcher.wait([f"source.ip={address}"])
            single.append(watcher.seen[f"source.ip={address}"] - sent)
            time.sleep(max(0.0, args.gap - (time.monotonic() - sent)))
        burst: list[float] = []
        for number in range(args.bursts):
            addresses = [f"10.2.{number}.{index + 1}" for index in range(args.burst_size)]
            sent = send(port, addresses)
            watcher.wait([f"source.ip={address}" for address in addresses])
            burst.extend(watcher.seen[f"source.ip={address}"] - sent for address in addresses)
            time.sleep(args.gap)
        watcher.stop.set()
    finally:
        code = live.stop()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "command": " ".join(["python -m bench.latency", *sys.argv[1:]]), "every": args.every,
        "single": summary(single), "bursts": summary(burst) if burst else None, "exit_code": code}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))
    print(f"machine: {results['machine']}; detection cycle every {args.every}")
    for name in ("single", "bursts"):
        figures = results[name]
        if figures:
            print(f"{name:7} n={figures['n']:3}  accepted -> case visible  p50 {figures['p50']:5.1f} s  "
                  f"p95 {figures['p95']:5.1f} s  max {figures['max']:5.1f} s")
    print(f"soc run stopped with exit code {code}")


if __name__ == "__main__":
    main()
