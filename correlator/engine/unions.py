"""One frame of several frames' rows, by column name."""

from __future__ import annotations

from collections.abc import Iterable

from pyspark.sql import DataFrame


def union_all(frames: Iterable[DataFrame]) -> DataFrame:
    """`unionByName` of `frames` (at least one), in their order, as a balanced tree of unions.

    Every DataFrame call analyses the plan it builds, and a union's analysis walks all of it (relations read
    twice, such as the chunks of one match plan over the same events, are told apart anew each time): folded
    from the left, n frames cost about n²/2 plan sizes of analysis, paired up about n·log2(n). Spark flattens
    the nested unions into one (`CombineUnions`): the same plan, rows and column order (the first frame's)."""
    level = list(frames)
    if not level:
        raise ValueError("union_all needs at least one frame")
    while len(level) > 1:
        level = [level[i].unionByName(level[i + 1]) if i + 1 < len(level) else level[i]
                 for i in range(0, len(level), 2)]
    return level[0]
