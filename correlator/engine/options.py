"""`EngineOptions`: every switch and tuning knob of the detection engine, in one value.

The defaults are what `soc detect` runs with; tests and benchmarks change single fields
(`dataclasses.replace`) to compare the engine's paths, never module constants.
"""

from __future__ import annotations

from dataclasses import dataclass

from correlator.errors import EngineError


@dataclass(frozen=True)
class EngineOptions:
    """How the engine evaluates rules; every path gives the same alerts.

    - `jvm_functions`: use CitySOC's JVM functions (`correlator.engine.jvm`): case-folding substring
      tests, the literal automaton and the time-window test read Spark's bytes directly. Without them
      (no JDK to build them) the same tests are built-in expressions over lower-cased copies.
    - `routing`: evaluate a rule with a route key only for the events whose key is one of its values;
      off, every rule runs on every event (the reference the routing tests compare against).
    - `literal_index`: rules without a route answer their substring tests from one multi-literal pass
      per field, and those that need a literal run only where one occurs; off, plain `contains`.
    - `chunk_size`: predicates per projection (a rule routed on n values counts n): keeps Spark's
      generated code within the JVM's method-size limits.
    - `fold_unrouted_max`: at most this many unrouted, ungated rules join a routed chunk instead of
      a chunk (and a scan) of their own.
    - `index_min_literals`: a field is indexed when the rules test at least this many distinct literals on
      it; below, direct `contains` calls cost less than one pass plus the bitmap.
    - `flat_case_max`: route dispatch with at most this many values is a flat CASE, above a binary search.
    - `parallel_datasets`: datasets detected at once (one's driver work overlaps another's scan).
    - `hot_buckets_max`: hot buckets per correlation (on average) collected to the driver to narrow its
      windows; beyond, every match is windowed.
    """

    jvm_functions: bool = False
    routing: bool = True
    literal_index: bool = True
    chunk_size: int = 200
    fold_unrouted_max: int = 8
    index_min_literals: int = 3
    flat_case_max: int = 4
    parallel_datasets: int = 2
    hot_buckets_max: int = 100_000

    def __post_init__(self) -> None:
        for name in ("chunk_size", "parallel_datasets", "index_min_literals"):
            if getattr(self, name) < 1:
                raise EngineError(f"EngineOptions.{name} must be at least 1")
        for name in ("fold_unrouted_max", "flat_case_max", "hot_buckets_max"):
            if getattr(self, name) < 0:
                raise EngineError(f"EngineOptions.{name} must not be negative")

    @classmethod
    def reference(cls) -> EngineOptions:
        """Every rule on every event, plain expressions: what the optimised paths are tested against."""
        return cls(jvm_functions=False, routing=False, literal_index=False)
