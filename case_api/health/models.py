"""Data health and dead letters as the API shows them. No tables: the intake keeps both under `SOC_HOME`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class LastDeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    reason: str
    origin: str


class SourceHealthOut(BaseModel):
    """Whether a source's data arrives, how much of it, and how much could not be parsed."""

    model_config = ConfigDict(from_attributes=True)

    last_event_received: datetime | None = Field(description="When its newest event arrived (None: never)")
    last_event_time: datetime | None = Field(description="Event time (@timestamp) of the newest event")
    events_last_hour: int
    events_per_minute: list[int] = Field(description="Events per minute over the last hour, oldest first, "
                                                     "the current minute last (60 numbers)")
    dead_letters_last_hour: int
    parse_error_rate: float | None = Field(description="Share of the last hour's records that could not be "
                                                       "parsed (None: no records)")
    last_dead_letter: LastDeadLetterOut | None


class DeadLetterOut(BaseModel):
    """One record a collector refused, with the reason; `source` is what the collector recorded (its parser)."""

    tenant: str
    source: str
    origin: str
    reason: str
    raw: str
    received: str
    raw_size: int | None = Field(default=None, description="Whole record's size in bytes, when `raw` was cut")
    raw_sha256: str | None = Field(default=None, description="Whole record's SHA-256, when `raw` was cut")
