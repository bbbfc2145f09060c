"""Evidence: `GET /cases/{id}/evidence` reads the raw events behind a case's alerts from a real lake written
by the real ingest path (sshd lines and CloudTrail records of two tenants), within the case's tenant only."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from case_api.auth.models import Role
from case_api.settings import Settings
from citysoc.deadletter import DeadLetterStore
from citysoc.store import ParquetEventStore
from collectors.ingest import ingest_files
from correlator.engine.alerts import iso_from_micros
from tests.case_api.conftest import SocApi

NG, RS = "northgate-hospital", "riverside-school"
RULE = {"id": "b1a2c3d4-0000-4000-8000-000000000001", "title": "SSH Brute Force", "level": "high", "tags": []}


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def stored(store: ParquetEventStore, tenant: str, dataset: str) -> list[dict[str, Any]]:
    """The tenant's stored events of a dataset, by event time then id (read straight from the lake)."""
    lake = store.arrow_dataset(dataset, tenants=[tenant])
    assert lake is not None
    rows = lake.to_table().to_pylist()
    return sorted(rows, key=lambda row: (row["@timestamp"], row["event"]["id"]))


def alert_for(tenant: str, rows: list[dict[str, Any]], *, name: str, ip: str = "203.0.113.9",
              dataset: str = "system.auth") -> dict[str, Any]:
    """An alert in the correlator's shape over stored events: `@timestamp` the first event's time (millisecond
    precision, as the correlator writes it), `event.end` the last, `event.ids` theirs."""
    times = [micros(row["@timestamp"]) for row in rows]
    return {
        "id": name, "@timestamp": iso_from_micros(min(times)), "organization": {"id": tenant}, "rule": RULE,
        "event": {"ids": [row["event"]["id"] for row in rows], "dataset": dataset, "end": iso_from_micros(max(times))},
        "entities": {"source.ip": [ip]},
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, corpora: Path) -> Path:
    """A lake filled once by `ingest_files` for both tenants: sshd lines and CloudTrail records."""
    root = tmp_path_factory.mktemp("evidence-lake")
    store = ParquetEventStore(root / "events")
    letters = DeadLetterStore(root / "deadletter")
    for tenant in (NG, RS):
        ingest_files(tenant=tenant, source="syslog", paths=[corpora / "loghub" / "OpenSSH_2k.log"], store=store,
                     dead_letters=letters, year=2024)
        ingest_files(tenant=tenant, source="aws.cloudtrail", paths=[corpora / "stratus"], store=store,
                     dead_letters=letters)
    return root / "events"


@pytest.fixture
def lake(settings: Settings, ingested: Path) -> ParquetEventStore:
    """That lake as the case API's event store under SOC_HOME."""
    shutil.copytree(ingested, settings.events_dir)
    return ParquetEventStore(settings.events_dir)


@pytest.fixture
def tenants(soc: SocApi) -> SocApi:
    soc.add_tenant(NG)
    soc.add_tenant(RS)
    return soc


def evidence(soc: SocApi, case_id: int, headers: dict[str, str] | None = None, **params: Any) -> Any:
    return soc.client.get(f"/api/v1/cases/{case_id}/evidence", params=params, headers=headers or soc.analyst)


def test_a_case_shows_the_raw_events_of_its_alerts_across_datasets_and_days(
    tenants: SocApi, lake: ParquetEventStore
) -> None:
    sshd = stored(lake, NG, "system.auth")
    attacker = Counter(row["source"]["ip"] for row in sshd if row["source"]["ip"]).most_common(1)[0][0]
    failures = [row for row in sshd if row["source"]["ip"] == attacker][:30]
    trail = stored(lake, NG, "aws.cloudtrail")
    days = sorted({row["@timestamp"].date() for row in trail})
    assert len(days) >= 5  # the CloudTrail records span days: the lookup reads several day folders
    spread = [next(row for row in trail if row["@timestamp"].date() == day) for day in days]
    result = tenants.ingest(
        alert_for(NG, failures[:20], name="burst-1", ip=attacker),
        alert_for(NG, failures[15:], name="burst-2", ip=attacker),  # shares five events with burst-1
        alert_for(NG, spread, name="trail", ip=attacker, dataset="aws.cloudtrail"),
    )
    trail_case, case_id = sorted(result["cases"])  # months apart: two cases, which an analyst merges
    merged = tenants.client.post(f"/api/v1/cases/{case_id}/merge", json={"sources": [trail_case]},
                                 headers=tenants.analyst)
    assert merged.status_code == 200, merged.text

    page = evidence(tenants, case_id, limit=200).json()
    expected = [row["event"]["id"] for row in failures] + [row["event"]["id"] for row in spread]
    # alerts by event time (sshd Dec 2024 after CloudTrail July..Nov 2024), each alert's ids in its order
    order = [row["event"]["id"] for row in spread] + [row["event"]["id"] for row in failures]
    assert (page["case_id"], page["tenant_id"], page["total"]) == (case_id, NG, len(expected))
    assert [item["event_id"] for item in page["items"]] == order
    by_id = {row["event"]["id"]: row for row in failures + spread}
    for item in page["items"]:
        event, row = item["event"], by_id[item["event_id"]]
        assert event is not None, item
        assert event["event"]["original"] == row["event"]["original"] and event["event"]["original"]
        assert event["organization"]["id"] == NG
        assert event["@timestamp"] == row["@timestamp"].isoformat().replace("+00:00", "Z")
    shared = {row["event"]["id"] for row in failures[15:20]}
    assert {item["event_id"]: item["alert_ids"] for item in page["items"] if item["event_id"] in shared} == {
        event_id: ["burst-1", "burst-2"] for event_id in shared}
    first_trail = page["items"][0]["event"]
    assert first_trail["event"]["dataset"] == "aws.cloudtrail" and first_trail["cloud"]["account"]["id"]
    assert "cloudtrail" in first_trail["event"]["original"].lower() or "eventName" in first_trail["event"]["original"]


def test_another_tenants_key_gets_404_and_the_own_tenants_viewer_reads_it(
    tenants: SocApi, lake: ParquetEventStore
) -> None:
    rows = stored(lake, NG, "system.auth")[:3]
    [case_id] = tenants.ingest(alert_for(NG, rows, name="ng-alert"))["cases"]
    school = tenants.headers(Role.TENANT_RESPONDER, RS)
    refused = evidence(tenants, case_id, headers=school)
    assert refused.status_code == 404 and rows[0]["event"]["original"] not in refused.text
    assert evidence(tenants, 2**31 - 1).status_code == 404
    assert evidence(tenants, case_id, headers=tenants.headers(Role.RULE_AUTHOR)).status_code == 403
    viewer = evidence(tenants, case_id, headers=tenants.headers(Role.TENANT_VIEWER, NG))
    assert viewer.status_code == 200 and [i["event"]["event"]["original"] for i in viewer.json()["items"]] == [
        row["event"]["original"] for row in rows]


def test_an_alert_listing_another_tenants_event_ids_never_returns_that_tenants_events(
    tenants: SocApi, lake: ParquetEventStore
) -> None:
    """The school's event ids, at their very times, in an alert of the hospital: the lookup reads only the
    hospital's partition, so the school's records stay out (reported as not in the store)."""
    school_rows = stored(lake, RS, "system.auth")[100:104]
    own_rows = stored(lake, NG, "system.auth")[100:102]
    mixed = alert_for(NG, own_rows + school_rows, name="mixed")
    [case_id] = tenants.ingest(mixed)["cases"]
    items = evidence(tenants, case_id).json()["items"]
    found = {item["event_id"]: item["event"] for item in items}
    assert set(found) == {row["event"]["id"] for row in own_rows + school_rows}
    for row in school_rows:
        assert found[row["event"]["id"]] is None
    for row in own_rows:
        assert found[row["event"]["id"]]["organization"]["id"] == NG
    # the same records exist in both tenants (one log file ingested twice); only the ids tell them apart
    assert {r["event"]["original"] for r in school_rows} <= {r["event"]["original"] for r in stored(lake, NG,
                                                                                                    "system.auth")}
    school_case = tenants.ingest(alert_for(RS, school_rows, name="school-own"))["cases"]
    assert all(item["event"]["organization"]["id"] == RS
               for item in evidence(tenants, school_case[0]).json()["items"])


def test_pages_partition_the_evidence_in_a_stable_order_with_a_bounded_size(
    tenants: SocApi, lake: ParquetEventStore
) -> None:
    rows = stored(lake, NG, "system.auth")[:47]
    [case_id] = tenants.ingest(alert_for(NG, rows[:30], name="a"), alert_for(NG, rows[20:], name="b"))["cases"]
    whole = evidence(tenants, case_id, limit=200).json()
    assert whole["total"] == 47 and len(whole["items"]) == 47
    paged: list[str] = []
    for offset in range(0, 50, 10):
        page = evidence(tenants, case_id, limit=10, offset=offset).json()
        assert (page["offset"], page["limit"], page["total"]) == (offset, 10, 47)
        assert len(page["items"]) == min(10, 47 - offset)
        paged += [item["event_id"] for item in page["items"]]
    assert paged == [item["event_id"] for item in whole["items"]] == [row["event"]["id"] for row in rows]
    assert evidence(tenants, case_id, limit=10, offset=40).json() == evidence(tenants, case_id, limit=10,
                                                                              offset=40).json()
    past = evidence(tenants, case_id, offset=47).json()
    assert (past["items"], past["total"]) == ([], 47)
    assert evidence(tenants, case_id).json()["limit"] == 50  # the default page
    for bad in ({"limit": 201}, {"limit": 0}, {"offset": -1}, {"offset": 10_000_001}):
        answer = evidence(tenants, case_id, **bad)
        assert answer.status_code == 422 and next(iter(bad)) in answer.json()["detail"]


def test_a_case_without_a_lake_lists_its_ids_as_not_stored(tenants: SocApi) -> None:
    alert = {"id": "orphan", "@timestamp": "2024-07-31T13:06:24Z", "organization": {"id": NG}, "rule": RULE,
             "event": {"ids": ["e-1", "e-2"]}, "entities": {"source.ip": ["198.51.100.4"]}}
    [case_id] = tenants.ingest(alert)["cases"]
    page = evidence(tenants, case_id).json()
    assert [(item["event_id"], item["event"]) for item in page["items"]] == [("e-1", None), ("e-2", None)]
