"""How long a member's events are kept: part of its contract, applied by the event store.

Elasticsearch applies it as an ILM policy per tenant (`citysoc.store.es_layout.lifecycle_policy`): events are
written to the hot tier, move to warm `warm_after` the backing index rolled over, and are deleted `delete_after`
it rolled over. The Parquet lake keeps everything (its retention is the operator's file housekeeping).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from citysoc.durations import Duration

#: The longest retention a contract may set (ten years: what public-sector record schedules ask at most).
MAX_RETENTION = timedelta(days=3660)


#: A retention period: text such as `7d` or a number of days, from 1 hour to :data:`MAX_RETENTION`.
Period = Annotated[
    timedelta,
    Duration(number_unit=timedelta(days=1), at_least=timedelta(hours=1), at_most=MAX_RETENTION,
             shape_error="a retention period is text such as 7d or 400d, or a number of days",
             bounds_error=f"a retention period is at least 1h and at most {MAX_RETENTION.days} days"),
    Field(description="7d, 400d, 12h (or a number of days)"),
]


class Retention(BaseModel):
    """Hot, then warm after `warm_after`, then deleted after `delete_after` (both counted from rollover)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warm_after: Period = timedelta(days=7)
    delete_after: Period = timedelta(days=365)

    @model_validator(mode="after")
    def _in_order(self) -> Retention:
        if self.warm_after >= self.delete_after:
            raise ValueError("retention runs in order: warm_after comes before delete_after")
        return self


#: What a member without retention in its contract gets.
DEFAULT_RETENTION = Retention()


def retention_of(contract: Any) -> Retention:
    """The retention in a contract document (`retention:`), else the default."""
    if isinstance(contract, dict) and contract.get("retention") is not None:
        return Retention.model_validate(contract["retention"])
    return DEFAULT_RETENTION
