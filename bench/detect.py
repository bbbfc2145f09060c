"""Detection throughput: CitySOC's routed engine vs. one pySigma-databricks filter per rule vs. SQLite.

`python -m bench.detect [--events N]` (also `make bench`). Not a test: it prints figures. Everything it
writes lives under `bench/out/` (gitignored): the generated lake (reused while the workload
parameters are unchanged), alerts, and `results.json`. See bench/README.md for what is measured.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import sqlite3
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import functions as F
from pyspark.sql import types as T
from sigma.backends.databricks import DatabricksBackend
from sigma.backends.sqlite import sqliteBackend
from sigma.rule import SigmaRule

from bench.workload import WorkloadSpec, generate, set_field, template_docs, template_table
from citysoc.schema import spark_schema
from citysoc.store import ParquetEventStore
from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
from correlator.compiler.logsources import find_route
from correlator.engine.detection import narrow_matches, read_events, run_detection
from correlator.engine.events import prepare_events
from correlator.engine.matching import match
from correlator.engine.session import build_session, engine_options

REPO = Path(__file__).resolve().parent.parent
CORPORA = REPO.parent / "shared" / "corpora"
OUT = Path(__file__).resolve().parent / "out"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def rule_dirs(sigma: Path) -> list[Path]:
    return [DEFAULT_RULES_DIR, sigma / "rules" / "cloud" / "aws", sigma / "rules" / "linux"]


def alerting_templates(spark: Any, docs: dict[str, list[dict[str, Any]]], rules: Any) -> dict[str, frozenset[int]]:
    """Indices of the templates that some alerting detection rule matches (through our engine)."""
    found: dict[str, frozenset[int]] = {}
    for dataset, items in docs.items():
        detections = [rule for rule in rules.detections(dataset) if rule.generate]
        if not detections:
            continue
        table = template_table(items)
        table = set_field(table, "event.id", pa.array([f"t{index}" for index in range(len(items))], pa.string()))
        frame = spark.createDataFrame(table.to_pylist(), schema=spark_schema())
        matches = match(prepare_events(frame), detections, engine_options(spark)).select("_event_id").distinct()\
            .collect()
        found[dataset] = frozenset(int(row["_event_id"][1:]) for row in matches)
    return found


def timed(action: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


# Windows of the moving-window runs, shifted by a second a run: they hold every event of the workload.
WIDE_SINCE = datetime(2000, 1, 1, tzinfo=UTC)
WIDE_UNTIL = datetime(2100, 1, 1, tzinfo=UTC)
SETTLED_FROM = 9  # end-to-end runs from this one on: the JIT has compiled what every run executes


def jvm_thread_cpu(spark: Any) -> dict[str, float]:
    """CPU seconds of the driver JVM's threads so far: Spark's task threads and the JIT compilers (Linux
    /proc; empty elsewhere). Local mode: the tasks run in this JVM."""
    try:
        pid = spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid()
        ticks = os.sysconf("SC_CLK_TCK")
        totals: dict[str, float] = {}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except OSError:
                continue  # the thread ended
            name, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
            group = "tasks" if name.startswith("Executor task") else "JIT" if name.startswith(("C1 ", "C2 ")) \
                else "other"
            totals[group] = totals.get(group, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        return totals
    except (OSError, ValueError, AttributeError):
        return {}


def _leaf_paths(schema: T.StructType, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for field in schema.fields:
        path = (*prefix, field.name)
        paths += _leaf_paths(field.dataType, path) if isinstance(field.dataType, T.StructType) else [path]
    return paths


def _kept(path: tuple[str, ...], tree: dict[str, Any]) -> Any:
    column = F.col(".".join(f"`{part}`" for part in path))
    if not tree:
        return column
    return F.when(column.isNull(), F.lit(None)).otherwise(
        F.struct(*(_kept((*path, name), sub).alias(name) for name, sub in sorted(tree.items()))))


def scanned_leaves(queries: list[Any]) -> dict[str, Any]:
    """Tree (name -> children; {} for a whole column) of the lake leaves the Parquet scans of `queries` read:
    Spark's nested schema pruning, from each one's physical plan."""
    tree: dict[str, Any] = {}
    for query in queries:
        leaves = query._jdf.queryExecution().sparkPlan().collectLeaves()
        for index in range(leaves.size()):
            leaf = leaves.apply(index)
            if leaf.getClass().getSimpleName() != "FileSourceScanExec":
                continue
            for path in _leaf_paths(T.StructType.fromJson(json.loads(leaf.requiredSchema().json()))):
                node = tree
                for part in path:
                    node = node.setdefault(part, {})
    return tree


def rule_columns(events: Any, tree: dict[str, Any]) -> Any:
    """`events` (prepared by read_events) with, of the lake's columns, only the leaves of `tree`
    (`scanned_leaves`). Full rows of our schema (200 fields) take about 3 GB a million events in Spark's
    cache: two datasets' overflow the bench's storage memory, and part of one is read back from disk in
    every timed query."""
    lake = set(spark_schema().fieldNames())
    return events.select(*(name for name in events.columns if name not in lake),
                         *(_kept((name,), sub).alias(name) for name, sub in sorted(tree.items()) if name in lake))


def per_core(events: int, seconds: float, cores: int) -> float:
    return events / seconds / cores if seconds > 0 else float("inf")


def _convert_each(rules: Any, sigma_paths: list[Path], backend: Callable[[Any], Any]) -> dict[str, str]:
    """Rule id -> the single query `backend(pipeline)` converts it to, for the rules our engine compiled.

    Rules the backend refuses, or converts to more than one query, are left out (and so not timed).
    """
    wanted = {rule.id for rule in rules.detections()}
    collection, _ = RuleCompiler().load(sigma_paths)
    converted: dict[str, str] = {}
    for rule in collection.rules:
        if str(rule.id) not in wanted or not isinstance(rule, SigmaRule):
            continue
        route = find_route(rule.logsource)
        if route is None:
            continue
        try:
            queries = backend(route.pipeline()).convert_rule(rule)
        except Exception:
            continue
        if len(queries) == 1 and isinstance(queries[0], str):
            converted[str(rule.id)] = queries[0]
    return converted


def naive_filters(rules: Any, sigma_paths: list[Path]) -> dict[str, str]:
    """Rule id -> the out-of-the-box DatabricksBackend expression (with our field-mapping pipelines)."""
    return _convert_each(rules, sigma_paths, DatabricksBackend)


def sqlite_queries(rules: Any, sigma_paths: list[Path]) -> dict[str, str]:
    """Rule id -> pySigma's sqlite backend query (Zircolite's method), rewritten to count matches."""
    return {rule_id: re.sub(r"^SELECT \* FROM ", "SELECT count(*) FROM ", query)
            for rule_id, query in _convert_each(rules, sigma_paths, sqliteBackend).items()}


def _flat_rows(table: pa.Table) -> tuple[list[str], list[tuple[Any, ...]]]:
    while any(pa.types.is_struct(field.type) for field in table.schema):
        table = table.flatten()
    columns = table.column_names
    rows = []
    for record in table.to_pylist():
        rows.append(tuple(json.dumps(value) if isinstance(value, list) else
                          (value.isoformat() if isinstance(value, datetime) else value) for value in record.values()))
    return columns, rows


def sqlite_bench(store: ParquetEventStore, queries: dict[str, str], rules: Any, sample: int) -> dict[str, Any]:
    """Zircolite's method: each rule's SQL over an in-memory table of flattened events (one core)."""
    per_dataset = {rule.id: rule.datasets for rule in rules.detections()}
    total_seconds, evaluated, ran, failed = 0.0, 0, 0, 0
    sources = {d: source for d in sorted({d for rule_id in queries for d in per_dataset[rule_id]})
               if (source := store.arrow_dataset(d)) is not None}
    for dataset, source in sources.items():
        table = source.head(sample // max(1, len(sources)), columns=None)
        table = table.drop_columns([name for name in ("tenant", "day") if name in table.column_names])
        columns, rows = _flat_rows(table)
        conn = sqlite3.connect(":memory:")
        conn.create_function("REGEXP", 2, lambda pattern, value: value is not None
                             and re.search(pattern, str(value)) is not None, deterministic=True)
        definition = ", ".join(f'"{name}" COLLATE NOCASE' for name in columns)
        conn.execute(f"CREATE TABLE logs ({definition})")
        conn.executemany(f"INSERT INTO logs VALUES ({', '.join('?' * len(columns))})", rows)
        dataset_seconds = 0.0
        for rule_id, query in queries.items():
            if dataset not in per_dataset[rule_id]:
                continue
            try:
                seconds, _ = timed(lambda q=query, c=conn: c.execute(q).fetchone())
            except sqlite3.Error:
                failed += 1
                continue
            ran += 1
            dataset_seconds += seconds
        total_seconds += dataset_seconds
        evaluated += len(rows)
        conn.close()
    return {"events": evaluated, "seconds": total_seconds, "rules_run": ran, "rules_failed": failed,
            "events_per_s_per_core": per_core(evaluated, total_seconds, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="events in the workload (default 2,000,000)")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="Spark local[N] (default: all)")
    parser.add_argument("--sqlite-sample", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=12, help=f"end-to-end runs (>= 5; runs {SETTLED_FROM}+ "
                        "give the settled service's figure)")
    parser.add_argument("--window-runs", type=int, default=4, help="end-to-end runs after those, each over a "
                        "window of its own holding every event (as `soc detect --every` moves it; default 4)")
    parser.add_argument("--skip-naive", action="store_true", help="skip the one-filter-per-rule baseline")
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs must be at least 5")

    sigma_paths = rule_dirs(args.corpora / "sigmahq")
    spark = build_session(master=f"local[{args.cores}]", shuffle_partitions=args.cores, app_name="citysoc-bench",
                          driver_memory="8g")
    compile_seconds, rules = timed(lambda: RuleCompiler(spark).compile(sigma_paths))
    detections = rules.detections()
    routed = sum(1 for rule in detections if rule.routing is not None)
    print(f"rules: {len(detections)} detections ({routed} routed), {len(rules.correlations())} correlations, "
          f"{len(rules.unsupported)} not runnable; compiled in {compile_seconds:.1f}s")

    spec = WorkloadSpec(events=args.events, days=args.days)
    events_dir = OUT / f"lake-{spec.tag}" / "events"
    store = ParquetEventStore(events_dir)
    options = engine_options(spark)
    docs = template_docs(args.corpora)
    generate_seconds, counts = timed(
        lambda: generate(events_dir, spec, docs, alerting_templates(spark, docs, rules)))
    total = sum(counts.values())
    print(f"workload: {total:,} events {counts} over {spec.days} days, 10 tenants, "
          f"{spec.alert_share:.1%} from alert-raising records; lake {events_dir} ({generate_seconds:.0f}s)")

    results: dict[str, Any] = {"machine": {"cores": args.cores, "cpu": cpu_model(), "date": datetime.now(UTC)
                                           .strftime("%Y-%m-%d"), "python": platform.python_version()},
                               "workload": {"events": total, "by_dataset": counts, "days": spec.days},
                               "rules": {"detections": len(detections), "routed": routed}}

    # 1. End to end from the lake: read, match, correlate, build and store alerts (fresh alert store).
    # Runs 1-2 as a new process sees them (as `soc detect` run by hand or by cron); runs 3-5 as the
    # long-lived service (`soc detect --every`) sees them early on, while the JIT still compiles Spark's
    # planner and reader code (C2 compiler threads take seconds of CPU per run); runs 9-12 once it has
    # settled. Each run prints the JVM's CPU seconds spent in its executor and JIT compiler threads, and the
    # driver's Python CPU seconds (this process: planning, Py4J, footers, alert documents).
    # Then --window-runs more, each over a window of its own, as the service moves its window every run
    # (each window holds every event of the lake: the same work, other bounds).
    runs: list[float] = []
    moving: list[float] = []
    for attempt in range(args.runs + args.window_runs):
        alerts_dir = OUT / "alerts"
        shutil.rmtree(alerts_dir, ignore_errors=True)
        shift = timedelta(seconds=attempt - args.runs + 1) if attempt >= args.runs else None
        since, until = (None, None) if shift is None else (WIDE_SINCE + shift, WIDE_UNTIL + shift)
        before, python_before = jvm_thread_cpu(spark), time.process_time()
        seconds, result = timed(lambda d=alerts_dir, s=since, u=until: run_detection(
            spark, store=store, alerts_dir=d, rules=rules, since=s, until=u, options=options))
        python_cpu, after = time.process_time() - python_before, jvm_thread_cpu(spark)
        cpu = ", ".join(f"{group} {after[group] - before.get(group, 0.0):.1f}s" for group in ("tasks", "JIT")
                        if group in after)
        (runs if shift is None else moving).append(seconds)
        steps = ", ".join(f"{step} {spent:.1f}s" for step, spent in result.timings.items())
        window = "" if shift is None else f" over [{since:%Y-%m-%d %H:%M:%S}, {until:%Y-%m-%d %H:%M:%S})"
        print(f"engine end-to-end run {attempt + 1}{window}: {seconds:.2f}s, {sum(result.events.values()):,} events, "
              f"{len(result.alerts):,} alerts, {per_core(total, seconds, args.cores):,.0f} events/s per core "
              f"(JVM CPU: {cpu or 'n/a'}; driver Python CPU {python_cpu:.2f}s; {steps})")
        if sum(result.events.values()) != total:
            raise SystemExit(f"run {attempt + 1} evaluated {sum(result.events.values()):,} events, not {total:,}")
    end_to_end, warm = min(runs[:2]), sorted(runs[2:5])[1]
    results["engine_end_to_end"] = {"seconds": runs, "events_per_s_per_core": per_core(total, end_to_end, args.cores),
                                    "alerts": len(result.alerts)}
    results["engine_end_to_end_warm"] = {"seconds": runs[2:5], "events_per_s_per_core": per_core(total, warm,
                                                                                                 args.cores)}
    settled_runs = runs[SETTLED_FROM - 1:]
    if settled_runs:
        settled = statistics.median(settled_runs)
        results["engine_end_to_end_settled"] = {"seconds": settled_runs,
                                                "events_per_s_per_core": per_core(total, settled, args.cores)}
    if moving:
        results["engine_end_to_end_moving_window"] = {
            "seconds": moving, "events_per_s_per_core": per_core(total, statistics.median(moving), args.cores)}

    # 1b. Rule evaluation from the lake: scan (pruned columns) + every rule + matches counted per rule;
    # no de-duplication, correlations or alerts.
    from_lake = 0.0
    for dataset in counts:
        chosen = rules.detections(dataset)

        def scan_and_match(d: str = dataset, c: Any = chosen) -> Any:
            frame = read_events(spark, store, d, deduplicate=False, options=options)
            assert frame is not None
            return narrow_matches(match(frame, c, options), c, []).groupBy("_rule_id").count().collect()

        from_lake += min(timed(scan_and_match)[0] for _ in range(2))
    lake_rate = per_core(total, from_lake, args.cores)
    results["engine_from_lake"] = {"seconds": from_lake, "events_per_s_per_core": lake_rate}
    print(f"engine from the lake, rules only (scan + every rule, matches counted per rule): {from_lake:.2f}s, "
          f"{lake_rate:,.0f} events/s per core")

    # 2. Evaluation only, on the same events cached in memory: read_events's columns, the lake's ones cut to
    # the leaves the rules read (`rule_columns`), so that both datasets stay in storage memory.
    # The naive filters of step 3 read the same cache: the leaves they read are kept too.
    expressions = {} if args.skip_naive else naive_filters(rules, sigma_paths)
    by_id = {rule.id: rule for rule in detections}
    cached = {}
    spark.sparkContext.setLogLevel("OFF")  # refused expressions would log pages of analysis errors
    logging.getLogger("SQLQueryContextLogger").disabled = True  # ... on the JVM side and in PySpark
    for dataset in counts:
        frame = read_events(spark, store, dataset, deduplicate=False, options=options)
        assert frame is not None
        queries = [match(frame, rules.detections(dataset), replace(options, routing=routing)).groupBy("_rule_id")
                   .count() for routing in (True, False)]
        for rule_id, expression in expressions.items():
            if dataset in by_id[rule_id].datasets:
                try:
                    queries.append(frame.filter(F.expr(expression)))
                except Exception:
                    continue  # refused by Spark's analysis: step 3 counts it as failed
        cached[dataset] = rule_columns(frame, scanned_leaves(queries)).persist()
        cached[dataset].count()
    spark.sparkContext.setLogLevel("ERROR")
    logging.getLogger("SQLQueryContextLogger").disabled = False

    def evaluate(rule_ids: set[str] | None, *, routing: bool) -> float:
        seconds = 0.0
        for dataset, frame in cached.items():
            chosen = [r for r in rules.detections(dataset) if rule_ids is None or r.id in rule_ids]
            if chosen:
                best = min(timed(lambda c=chosen, f=frame: match(f, c, replace(options, routing=routing))
                                 .groupBy("_rule_id").count().collect())[0] for _ in range(2))
                seconds += best
        return seconds

    ours_cached = evaluate(None, routing=True)
    unrouted_cached = evaluate(None, routing=False)
    results["engine_cached"] = {"seconds": ours_cached,
                                "events_per_s_per_core": per_core(total, ours_cached, args.cores),
                                "unrouted_seconds": unrouted_cached,
                                "unrouted_events_per_s_per_core": per_core(total, unrouted_cached, args.cores)}
    print(f"engine on cached events: {ours_cached:.2f}s, {per_core(total, ours_cached, args.cores):,.0f} events/s per "
          f"core (routing off: {per_core(total, unrouted_cached, args.cores):,.0f})")

    # 3. The naive way: DatabricksBackend out of the box, one df.filter(expr).count() per rule.
    if not args.skip_naive:
        naive_seconds, ran, failed = 0.0, set(), 0
        spark.sparkContext.setLogLevel("OFF")  # refused expressions would log pages of analysis errors
        logging.getLogger("SQLQueryContextLogger").disabled = True  # ... on the JVM side and in PySpark
        for rule_id, expression in expressions.items():
            for dataset in by_id[rule_id].datasets:
                if dataset not in cached:
                    continue
                try:
                    seconds, _ = timed(lambda e=expression, f=cached[dataset]: f.filter(F.expr(e)).count())
                except Exception:
                    failed += 1
                    break
                naive_seconds += seconds
                ran.add(rule_id)
        spark.sparkContext.setLogLevel("ERROR")
        logging.getLogger("SQLQueryContextLogger").disabled = False
        ours_same = evaluate(ran, routing=True)
        naive_rate = per_core(total, naive_seconds, args.cores)
        same_rate = per_core(total, ours_same, args.cores)
        results["naive"] = {"rules_run": len(ran), "rules_refused_or_failed": len(detections) - len(ran),
                            "seconds": naive_seconds, "events_per_s_per_core": naive_rate,
                            "engine_same_rules_seconds": ours_same, "engine_same_rules_events_per_s_per_core":
                                same_rate, "speedup": naive_seconds / ours_same if ours_same else None}
        print(f"naive (one databricks filter per rule, {len(ran)} of {len(detections)} rules run as-is): "
              f"{naive_seconds:.1f}s, {naive_rate:,.0f} events/s per core; our engine on the same rules "
              f"{ours_same:.2f}s -> {naive_seconds / ours_same:.1f}x")
    for frame in cached.values():
        frame.unpersist()

    # 4. SQLite per rule (Zircolite's method) on a sample, one core.
    queries = sqlite_queries(rules, sigma_paths)
    lite = sqlite_bench(store, queries, rules, args.sqlite_sample)
    results["sqlite"] = lite
    print(f"sqlite per rule ({lite['rules_run']} rules run, {lite['rules_failed']} failed, on {lite['events']:,} "
          f"events): {lite['seconds']:.1f}s, {lite['events_per_s_per_core']:,.0f} events/s per core")

    ours = results["engine_end_to_end"]["events_per_s_per_core"]
    summary = [("CitySOC end-to-end, new process (runs 1-2)", ours),
               ("CitySOC end-to-end, warm service (runs 3-5)",
                results["engine_end_to_end_warm"]["events_per_s_per_core"]),
               *([(f"CitySOC end-to-end, settled (runs {SETTLED_FROM}-{args.runs})",
                   results["engine_end_to_end_settled"]["events_per_s_per_core"])]
                 if "engine_end_to_end_settled" in results else []),
               *([(f"CitySOC end-to-end, moving window (runs {args.runs + 1}-{args.runs + len(moving)})",
                   results["engine_end_to_end_moving_window"]["events_per_s_per_core"])] if moving else []),
               ("CitySOC rules only, from the lake", results["engine_from_lake"]["events_per_s_per_core"]),
               ("CitySOC evaluation, cached events", results["engine_cached"]["events_per_s_per_core"]),
               ("CitySOC evaluation, cached, routing off", results["engine_cached"]["unrouted_events_per_s_per_core"])]
    if "naive" in results:
        summary.append((f"naive: databricks filter/rule ({results['naive']['rules_run']} rules)",
                        results["naive"]["events_per_s_per_core"]))
        summary.append((f"CitySOC cached, the same {results['naive']['rules_run']} rules",
                        results["naive"]["engine_same_rules_events_per_s_per_core"]))
    summary.append((f"sqlite per rule, sample ({lite['rules_run']} rules)", lite["events_per_s_per_core"]))
    print(f"\n{results['machine']['cpu']}, {args.cores} cores, {results['machine']['date']}; "
          f"{total:,} events, {len(detections)} detection rules")
    print("(rows name their rule set; ratios between different rule sets compare different work)")
    print(f"{'':48s} {'events/s per core':>18s} {'vs naive':>9s} {'vs sqlite':>9s}")
    for label, rate in summary:
        versus_naive = f"{rate / results['naive']['events_per_s_per_core']:.1f}x" if "naive" in results else "-"
        print(f"{label:48s} {rate:18,.0f} {versus_naive:>9s} {rate / lite['events_per_s_per_core']:8.1f}x")
    if "naive" in results:
        print(f"same rules, cached: engine {results['naive']['speedup']:.1f}x faster than the naive way")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2, default=str))
    spark.stop()


if __name__ == "__main__":
    main()
