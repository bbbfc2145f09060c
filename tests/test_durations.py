"""Duration fields (citysoc/durations.py) as members meet them: an SLA contract's targets (bare numbers are seconds,
more than zero up to a year) and a retention (bare numbers are days, an hour up to ten years), each with its own
advice, and written back as text."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from case_api.sla.models import ClockTargets
from citysoc.retention import Retention

TARGETS = {"acknowledge": "15m", "triage": "1h", "resolve": "1d"}


def _refused(model: Any, document: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(document)
    return str(raised.value)


def test_a_target_reads_text_or_seconds_and_advises_in_its_own_terms() -> None:
    targets = ClockTargets.model_validate({**TARGETS, "triage": 5400, "resolve": timedelta(days=2)})
    assert (targets.triage, targets.resolve) == (timedelta(minutes=90), timedelta(days=2))
    assert targets.model_dump(mode="json") == {"acknowledge": "15m", "triage": "90m", "resolve": "2d"}
    shape = "a duration is text such as 15m, 4h or 2d, or a number of seconds"
    bounds = "a target is more than 0 and at most 365 days"
    for value, advice in [(True, shape), (1.5, shape), (None, shape), (0, bounds), (-60, bounds), ("366d", bounds),
                          (timedelta(0), bounds), (10**20, bounds), ("soon", "'soon' is not a duration")]:
        assert advice in _refused(ClockTargets, {**TARGETS, "acknowledge": value}), value
    assert ClockTargets.model_validate({**TARGETS, "acknowledge": 1}).acknowledge == timedelta(seconds=1)


def test_a_retention_reads_text_or_days_and_advises_in_its_own_terms() -> None:
    retention = Retention.model_validate({"warm_after": "12h", "delete_after": 400})
    assert (retention.warm_after, retention.delete_after) == (timedelta(hours=12), timedelta(days=400))
    assert retention.model_dump(mode="json") == {"warm_after": "12h", "delete_after": "400d"}
    shape = "a retention period is text such as 7d or 400d, or a number of days"
    bounds = "a retention period is at least 1h and at most 3660 days"
    for value, advice in [(False, shape), (7.0, shape), ([], shape), ("59m", bounds), (0, bounds), (3661, bounds),
                          (10**12, bounds), ("0d", "'0d' is zero")]:
        assert advice in _refused(Retention, {"delete_after": value}), value
    assert Retention.model_validate({"warm_after": "1h", "delete_after": 3660}).delete_after == timedelta(days=3660)
