"""How long a rule author waits for `soc rules test`: own rules plus a 100-rule external pack.

Run: `python -m bench.rules_test [--pack-size 100] [--naive-sample 3] [--skip-pack] [--skip-backtest]`. Not a test.

A rule author's loop, first: `soc rules test` on the project's own rules in a fresh process (target 15 s);
`soc rules test --watch` re-running a saved rule's cases with the warm engine, from the save to the printed
report (target 2 s; median of several saves); `soc rules backtest` over the demo lake in a fresh process
(target 20 s; the lake is made once by `soc demo` under bench/out/rules-home). Fresh processes are also
given in CPU seconds of the process and its Spark JVM (the figure to compare on a loaded machine).

The pack is SigmaHQ's aws and linux rules (from ../shared/corpora/sigmahq), copied to
bench/out/rules-pack/ with generated evidence: one look-alike per rule, an event of the rule's own
dataset that must not match. The timed command is exactly what CI runs,
`soc rules test PACK detection_rules --junit FILE`, in a fresh process, Spark start included.

The naive way for comparison: one `soc rules test` process per rule (what a per-rule CI job or a
pre-commit hook per file does), timed on a sample of rules and scaled to the whole set.
"""

from __future__ import annotations

import argparse
import os
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora" / "sigmahq" / "rules"
OUT = REPO / "bench" / "out"
SOC = Path(sys.executable).parent / "soc"

LOOK_ALIKES = {
    "aws": {"description": "a quiet CloudTrail call", "match": False,
            "ecs": {"event": {"provider": "s3.amazonaws.com", "action": "HeadObject"}}},
    "linux": {"description": "an ordinary cron line", "match": False,
              "ecs": {"process": {"name": "CRON"}, "message": "pam_unix(cron:session): session closed for user root"}},
}


def build_pack(size: int) -> Path:
    """Copy `size` SigmaHQ rules (aws first, then linux) with a look-alike each; returns the folder."""
    pack = OUT / "rules-pack"
    shutil.rmtree(pack, ignore_errors=True)
    sources = sorted((CORPORA / "cloud" / "aws").rglob("*.yml")) + sorted((CORPORA / "linux").rglob("*.yml"))
    for rule in sources[:size]:
        product = "aws" if "cloud" in rule.parts else "linux"
        target = pack / rule.relative_to(CORPORA)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rule, target)
        evidence = {"examples": [LOOK_ALIKES[product]]}
        target.with_suffix(".evidence.yaml").write_text(yaml.safe_dump(evidence, sort_keys=False))
    return pack


def _tree_cpu(root: int) -> dict[int, float]:
    """User + system CPU seconds of `root` and every process below it (the JVM is Python's grandchild), by pid."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return {pid: cpu[pid] for pid in tree if pid in cpu}


def run_measured(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run `command`; (its result, wall seconds, CPU seconds of it and its children, the Spark JVM included).

    The JVM is never waited for by its Python parent, so its CPU is not in the parent's rusage: the process
    tree is sampled from /proc every 0.1 s and each process's last sample counted (Linux only)."""
    started = time.perf_counter()
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        last: dict[int, float] = {}
        output: list[tuple[str, str]] = []
        reader = threading.Thread(target=lambda: output.append(process.communicate()), daemon=True)
        reader.start()
        while reader.is_alive():
            last.update(_tree_cpu(process.pid))
            reader.join(0.1)
        stdout, stderr = output[0]
    elapsed = time.perf_counter() - started
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr), elapsed, sum(last.values())


def timed(args: list[str]) -> tuple[float, str, float]:
    """(wall seconds, the `rules:` summary line, CPU seconds of the process and its JVM) of `soc ARGS`."""
    env = {**os.environ, "SOC_HOME": str(OUT / "rules-home")}
    result, elapsed, cpu = run_measured([str(SOC), *args], env)
    summary = next((line for line in result.stdout.splitlines() if line.startswith("rules:")), result.stdout[-300:])
    if result.returncode not in (0, 1):
        raise SystemExit(f"soc {' '.join(args)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return elapsed, summary, cpu


def watch_latencies(saves: int) -> list[float]:
    """Seconds from saving an evidence file to the `rules:` line of its re-run, under `soc rules test --watch`."""
    folder = OUT / "rules-watch"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(REPO / "detection_rules", folder)
    env = {**os.environ, "SOC_HOME": str(OUT / "rules-home")}
    process = subprocess.Popen([str(SOC), "rules", "test", "--watch", str(folder)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue[tuple[float, str]] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put((time.perf_counter(), line))

    def summary(timeout: float) -> float:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            try:
                at, line = lines.get(timeout=1)
            except queue.Empty:
                continue
            if line.startswith("rules:"):
                return at
        raise SystemExit("soc rules test --watch printed no report in time")

    threading.Thread(target=read, daemon=True).start()
    seconds: list[float] = []
    try:
        summary(600)
        evidence = sorted(folder.rglob("*.evidence.yaml"))
        for n in range(saves):
            path = evidence[n % len(evidence)]
            text = path.read_text()
            saved = time.perf_counter()
            path.write_text(text + f"# saved {n}\n")
            seconds.append(summary(120) - saved)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    return seconds


def bench_author_loop(options: argparse.Namespace) -> None:
    own = REPO / "detection_rules"
    elapsed, summary, cpu = timed(["rules", "test", str(own)])
    print(f"soc rules test, own rules, fresh process: {elapsed:.1f} s, {cpu:.1f} CPU s with its JVM (target 15 s: "
          f"{'met' if elapsed <= 15 else 'NOT met'})\n  {summary}")
    latencies = watch_latencies(options.watch_saves)
    print(f"soc rules test --watch, save -> report: median {statistics.median(latencies):.2f} s, "
          f"max {max(latencies):.2f} s over {len(latencies)} saves (target 2 s: "
          f"{'met' if statistics.median(latencies) <= 2 else 'NOT met'})")
    if options.skip_backtest:
        return
    home = OUT / "rules-home"
    if not (home / "lake" / "events").is_dir():
        subprocess.run([str(SOC), "demo"], env={**os.environ, "SOC_HOME": str(home)}, check=True,
                       capture_output=True)
    done, seconds, cpu = run_measured([str(SOC), "rules", "backtest"], {**os.environ, "SOC_HOME": str(home)})
    last = [line for line in done.stdout.splitlines() if line.startswith("events scanned")]
    print(f"soc rules backtest over the demo lake, fresh process: {seconds:.1f} s, {cpu:.1f} CPU s with its JVM "
          f"(target 20 s: {'met' if seconds <= 20 else 'NOT met'})\n  {last[0] if last else done.stdout[-300:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pack-size", type=int, default=100)
    parser.add_argument("--naive-sample", type=int, default=3, help="rules timed one process each")
    parser.add_argument("--watch-saves", type=int, default=5, help="saves timed under --watch")
    parser.add_argument("--skip-pack", action="store_true", help="only the author's loop on the own rules")
    parser.add_argument("--skip-backtest", action="store_true")
    options = parser.parse_args()
    bench_author_loop(options)
    if options.skip_pack:
        return
    if not CORPORA.is_dir():
        raise SystemExit(f"needs the SigmaHQ corpus at {CORPORA}")
    pack = build_pack(options.pack_size)
    own = REPO / "detection_rules"
    rules = len(list(pack.rglob("*.yml"))) + len(list(own.rglob("*.yml")))

    elapsed, summary, cpu = timed(["rules", "test", str(pack), str(own), "--junit", str(OUT / "rules-pack.xml")])
    print(f"soc rules test, {rules} rules (own + {options.pack_size}-rule pack), one process: {elapsed:.1f} s, "
          f"{cpu:.1f} CPU s")
    print(f"  {summary}")

    sample = sorted(pack.rglob("*.yml"))[: options.naive_sample]
    per_rule = []
    for rule in sample:
        single = OUT / "rules-single"
        shutil.rmtree(single, ignore_errors=True)
        single.mkdir(parents=True)
        shutil.copy(rule, single / rule.name)
        shutil.copy(rule.with_suffix(".evidence.yaml"), single / rule.with_suffix(".evidence.yaml").name)
        seconds, _, _ = timed(["rules", "test", str(single)])
        per_rule.append(seconds)
    naive = sum(per_rule) / len(per_rule) * rules
    print(f"naive, one process per rule: {sum(per_rule) / len(per_rule):.1f} s per rule "
          f"(sample of {len(per_rule)}) -> {naive:.0f} s for {rules} rules")
    print(f"ratio: {naive / elapsed:.1f}x faster in one pass; target: under 60 s -> "
          f"{'met' if elapsed < 60 else 'NOT met'}")


if __name__ == "__main__":
    main()
