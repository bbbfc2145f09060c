"""What reading SLA clocks costs: `read_clocks` (a case's three clocks as every case answer and GET /metrics compute
them) for cases opened over the last days, on the default 24x7 contract and on a business-hours one.

    python -m bench.sla                 # 20,000 cases
    python -m bench.sla --cases 2000

Figures are CPU seconds of this process (user + system), so they do not depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import resource
from datetime import UTC, datetime, timedelta

from case_api.cases.models import Case
from case_api.sla.clocks import read_clocks
from case_api.sla.models import DEFAULT_CONTRACT, SlaContract

BUSINESS = SlaContract.model_validate({
    "calendar": {"kind": "business_hours", "timezone": "Europe/London",
                 "hours": {day: "08:00-18:00" for day in ("mon", "tue", "wed", "thu", "fri")},
                 "holidays": ["2026-12-25", "2026-12-28"]},
    "targets": DEFAULT_CONTRACT.model_dump(mode="json")["targets"],
})


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=20_000)
    args = parser.parse_args()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    severities = ("low", "medium", "high", "critical")
    cases = [Case(tenant_id="t", severity=severities[n % 4], created_at=now - timedelta(minutes=7 * n),
                  acknowledged_at=None, triaged_at=None, resolved_at=None, sla_paused_since=None, sla_pauses=[])
             for n in range(args.cases)]
    for name, contract in (("24x7 (default)", DEFAULT_CONTRACT), ("business hours", BUSINESS)):
        start = cpu()
        for case in cases:
            read_clocks(case, contract, now=now, default=False)
        spent = cpu() - start
        print(f"{name:<15} {args.cases:,} cases: {spent:.2f} CPU s, {spent / args.cases * 1e6:.0f} µs per case")


if __name__ == "__main__":
    main()
