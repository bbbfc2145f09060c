"""Correlation state bounds: a 24 h sliding window over 10 million matches with 1 million group keys.

`python -m bench.correlation [--events N] [--keys K]`. Not a test: it prints figures. Each measured
run is a process of its own (so its peak memory is its own) over the same generated matches, written
once as Parquet under `bench/out/` and read back as the engine reads its checkpointed matches:

- engine: `correlation_alerts` (the hot-bucket probe, then windows over only the matches near a hot
  bucket), as `run_detection` runs a correlation;
- every match windowed: `correlation_windows` with no bucket filter at all (each group sorted and
  windowed whole), the plain way to run the same windows and the peer the engine is compared with.

Printed per run: wall seconds, matches/s, alerts, the driver's peak RSS (Python) and the JVM's
(`VmHWM`), and from Spark's event log the largest execution memory one task held and the JVM heap's
peak. See bench/README.md for recorded figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from correlator.engine.correlation import correlation_input, correlation_windows
from correlator.engine.detection import correlation_alerts
from correlator.engine.session import LOG4J2_CONFIG, build_session
from correlator.errors import RuleLocation
from correlator.model import CompiledRule, CorrelationSpec
from correlator.sql import Condition

OUT = Path(__file__).resolve().parent / "out"
DAY_US = 24 * 3600 * 1_000_000
TENANTS = 10


def correlation_rule(kind: str, threshold: int) -> CompiledRule:
    """A 24 h correlation grouped by source IP over one base rule's matches."""
    spec = CorrelationSpec(type=kind, rule_ids=("base",), group_by=("source.ip",), group_exprs=("_source_ip",),
                           timespan_seconds=24 * 3600, op="gte", count=threshold,
                           value_field="user.name" if kind == "value_count" else None,
                           value_expr="_user_name" if kind == "value_count" else None)
    return CompiledRule(id=f"bench-{kind}", title=f"bench {kind}", level="high", tags=(), datasets=("system.auth",),
                        condition=Condition.text(""), location=RuleLocation("bench"), kind="correlation",
                        correlation=spec)


def generate_matches(spark: SparkSession, *, events: int, keys: int, path: Path) -> None:
    """Narrow matches as detection checkpoints them: uniform over 48 h (two windows' worth), each of
    `keys` source addresses (spread over the tenants) as likely as the next, eight user names."""
    keyed = spark.range(events, numPartitions=max(2, events // 1_000_000)).withColumn(
        "_k", (F.xxhash64("id") % keys + keys) % keys)
    frame = keyed.select(
        (F.col("_k") % TENANTS).cast("string").alias("_tenant"),  # a key belongs to one tenant
        F.concat(F.lit("e"), F.col("id").cast("string")).alias("_event_id"),
        (F.lit(1_772_323_200_000_000) + (F.rand(7) * 2 * DAY_US).cast("long")).alias("_ts_us"),
        F.lit("system.auth").alias("_dataset"),
        F.concat(F.lit("u"), (F.rand(11) * 8).cast("int").cast("string")).alias("_user_name"),
        F.concat_ws(".", F.lit("10"), *[F.shiftright(F.col("_k").bitwiseAND(255 << shift), shift).cast("string")
                                        for shift in (16, 8, 0)]).alias("_source_ip"),
        F.lit("web01").alias("_host_name"),
        F.lit(None).cast("string").alias("_cloud_account_id"),
        F.lit("base").alias("_rule_id"),
    )
    frame.write.mode("overwrite").parquet(str(path))


def _jvm_peak_mb() -> float | None:
    """VmHWM of the JVM this process started (Spark's driver and, in local mode, its executor)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[-1].split()
            if fields[1] == me and "java" in (stat.parent / "comm").read_text():
                for line in (stat.parent / "status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            continue
    return None


def _event_log_peaks(directory: Path) -> dict[str, float]:
    """The largest `Peak Execution Memory` of one task, and the executor's peak heap and execution
    memory, in MB, from Spark's event log."""
    task = heap = execution = 0
    for log in directory.rglob("events_*"):
        for line in log.read_text().splitlines():
            if not line.startswith("{"):
                continue
            event = json.loads(line)
            if event.get("Event") == "SparkListenerTaskEnd":
                task = max(task, (event.get("Task Metrics") or {}).get("Peak Execution Memory", 0))
            elif event.get("Event") == "SparkListenerStageExecutorMetrics":
                metrics = event.get("Executor Metrics") or {}
                heap = max(heap, metrics.get("JVMHeapMemory", 0))
                execution = max(execution, metrics.get("OnHeapExecutionMemory", 0))
    return {"task_execution_peak_mb": task / 2**20, "jvm_heap_peak_mb": heap / 2**20,
            "execution_memory_peak_mb": execution / 2**20}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One run (`--run engine|all-windowed`), in this process; returns its figures."""
    logs = OUT / f"eventlog-{args.run}-{os.getpid()}"
    logs.mkdir(parents=True, exist_ok=True)
    os.environ["PYSPARK_SUBMIT_ARGS"] = (
        f'--driver-java-options "-Dlog4j2.configurationFile=file:{LOG4J2_CONFIG}" '
        f"--conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file:{logs} "
        "--conf spark.eventLog.compress=false --conf spark.eventLog.logStageExecutorMetrics=true pyspark-shell")
    spark = build_session(master=f"local[{args.cores}]", shuffle_partitions=args.partitions,
                          app_name="citysoc-bench-correlation", driver_memory=args.driver_memory)
    rule = correlation_rule(args.kind, args.threshold)
    matches: DataFrame = spark.read.parquet(args.data)
    inputs = correlation_input(matches, rule, unique_matches=True)
    started = time.perf_counter()
    if args.run == "engine":
        alerts = len(correlation_alerts({rule.id: [inputs]}, {rule.id: rule}, {"base": args.events},
                                        hot_buckets_max=args.hot_buckets_max))
    else:
        alerts = len(correlation_windows(inputs, rule, prefilter=False).collect())
    seconds = time.perf_counter() - started
    jvm_peak = _jvm_peak_mb()
    spark.stop()
    figures = {"run": args.run, "kind": args.kind, "seconds": seconds, "events": args.events, "keys": args.keys,
               "alerts": alerts, "events_per_s": args.events / seconds,
               "driver_python_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "jvm_rss_peak_mb": jvm_peak, **_event_log_peaks(logs)}
    shutil.rmtree(logs)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000, help="base-rule matches (10,000,000)")
    parser.add_argument("--keys", type=int, default=1_000_000, help="distinct source addresses (1,000,000)")
    parser.add_argument("--kind", choices=["event_count", "value_count"], default="event_count")
    parser.add_argument("--threshold", type=int, default=0,
                        help="alerts at this many matches in 24 h (default: twice the mean matches a key per day)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--partitions", type=int, default=0, help="shuffle partitions (default: 8 a million)")
    parser.add_argument("--driver-memory", default="2g", help="Spark driver heap, as the engine's default (2g)")
    parser.add_argument("--hot-buckets-max", type=int, default=100_000)
    parser.add_argument("--skip-peer", action="store_true", help="without the every-match-windowed run")
    parser.add_argument("--run", choices=["engine", "all-windowed"], help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.partitions = args.partitions or max(2, 8 * args.events // 1_000_000)
    # uniform over 48 h: a key's 24 h window holds half its matches on average; twice that alerts
    args.threshold = args.threshold or max(2, round(args.events / args.keys))
    if args.run:
        print(json.dumps(measure(args)))
        return
    data = OUT / f"correlation-matches-{args.events}-{args.keys}.parquet"
    if not (data / "_SUCCESS").exists():
        started = time.perf_counter()
        spark = build_session(master=f"local[{args.cores}]", shuffle_partitions=args.partitions,
                              app_name="citysoc-bench-correlation-data")
        generate_matches(spark, events=args.events, keys=args.keys, path=data)
        spark.stop()
        print(f"generated {args.events:,} matches over {args.keys:,} keys in {time.perf_counter() - started:.0f} s")
    print(f"{args.kind} >= {args.threshold} in a 24 h sliding window, {args.events:,} matches over 48 h, "
          f"{args.keys:,} source addresses in {TENANTS} tenants, {args.cores} cores, {args.partitions} partitions")
    results = []
    for run in ["engine", *([] if args.skip_peer else ["all-windowed"])]:
        command = [sys.executable, "-m", "bench.correlation", "--run", run, "--data", str(data),
                   *(f"--{name.replace('_', '-')}={value}" for name, value in vars(args).items()
                     if name not in ("run", "data", "skip_peer") and value is not None)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures = json.loads(output.strip().splitlines()[-1])
        results.append(figures)
        print(f"{run:>13}: {figures['seconds']:7.1f} s  {figures['events_per_s']:>10,.0f} matches/s  "
              f"{figures['alerts']:,} alerts  driver (Python) peak {figures['driver_python_peak_mb']:.0f} MB  "
              f"JVM peak RSS {figures['jvm_rss_peak_mb'] or 0:.0f} MB  heap peak {figures['jvm_heap_peak_mb']:.0f} MB  "
              f"execution memory peak {figures['execution_memory_peak_mb']:.0f} MB (largest task "
              f"{figures['task_execution_peak_mb']:.0f} MB)")
    if len(results) == 2:
        print(f"engine / every match windowed: {results[1]['seconds'] / results[0]['seconds']:.2f}x faster")
    summary = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.processor()
               or platform.machine(), "cpus": os.cpu_count(), "command": " ".join(sys.argv), "runs": results}
    (OUT / "correlation-results.json").write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
