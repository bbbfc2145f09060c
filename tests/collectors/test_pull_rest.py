"""The REST pullers (Okta System Log, GitHub audit log, Management Activity API) against local servers that
speak those APIs (tests/collectors/pull_servers.py), into a real spool: paging, checkpoints across polls
and across a SIGKILL between the spool append and the checkpoint, rate limits, broken pages."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from collectors.pull import PullCheckpoints, PullRunner, PullSource
from tests.collectors.pull_helpers import Harness
from tests.collectors.pull_servers import Answer, GitHubAuditLog, ManagementActivity, OktaLogs, github_entry, okta_event

ENV = {"OKTA_TOKEN": "okta-secret", "GH_TOKEN": "gh-secret", "M365_SECRET": "m365-secret"}


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, ENV)
    yield harness
    harness.spool.close()


@pytest.fixture
def okta() -> Iterator[OktaLogs]:
    logs = OktaLogs("okta-secret", page=100)
    logs.events = [okta_event(number, f"2026-12-01T10:{number // 60:02d}:{number % 60:02d}.000Z")
                   for number in range(250)]
    with logs.server:
        yield logs


def okta_source(okta: OktaLogs) -> PullSource:
    return PullSource(id=7, tenant="council", name="okta", kind="okta", parser="okta.system",
                      settings={"domain": okta.server.url, "token": "env:OKTA_TOKEN",
                                "since": "2026-12-01T00:00:00Z"})


def test_okta_pages_then_polls_from_the_next_link(harness: Harness, okta: OktaLogs) -> None:
    source = okta_source(okta)
    report = harness.runner(source).poll()
    assert report.records == 250 and not report.failed
    assert [event["uuid"] for event in harness.payloads()] == [f"okta-{n:05d}" for n in range(250)]
    first = okta.server.requests[0]
    assert first.query["since"] == "2026-12-01T00:00:00.000Z" and first.query["sortOrder"] == "ASCENDING"
    assert first.query["limit"] == "1000"
    assert all("after" in request.query for request in okta.server.requests[1:])
    # caught up: the next poll asks the stored next link and finds nothing; later events come exactly once
    assert harness.runner(source).poll().records == 0
    okta.events += [okta_event(number, "2026-12-01T11:00:00.000Z") for number in range(250, 260)]
    assert harness.runner(source).poll().records == 10
    uuids = Counter(event["uuid"] for event in harness.payloads())
    assert len(uuids) == 260 and set(uuids.values()) == {1}
    assert okta.server.requests[-1].headers["authorization"] == "SSWS okta-secret"


def test_okta_kill_between_append_and_checkpoint_loses_and_repeats_nothing_but_that_page(
        harness: Harness, okta: OktaLogs) -> None:
    source = okta_source(okta)
    assert harness.crash_once(source, kill_after=2) == -9  # killed after page 2 was durable, before its checkpoint
    assert len(harness.payloads()) == 200
    checkpoint = json.loads((harness.checkpoint_dir / "source-7-okta.json").read_text())
    assert "after" in checkpoint["state"]["next"]  # page 1's checkpoint was written
    assert harness.runner(source).poll().records == 150  # page 2 again, then page 3
    uuids = Counter(event["uuid"] for event in harness.payloads())
    assert len(uuids) == 250  # nothing lost
    assert sorted(uuid for uuid, count in uuids.items() if count > 1) == [f"okta-{n:05d}" for n in range(100, 200)]


def test_okta_rate_limit_waits_for_the_reset_and_goes_on(harness: Harness, okta: OktaLogs) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 42
    okta.server.throttle("/api/v1/logs", Answer.json({"errorCode": "E0000047", "errorSummary": "API call exceeded "
                                                       "rate limit due to too many requests."}, 429,
                                                      headers={"X-Rate-Limit-Remaining": "0",
                                                         "X-Rate-Limit-Reset": str(reset)}))
    report = harness.runner(okta_source(okta)).poll()
    assert report.records == 250 and not report.failed
    assert len(harness.sleeps) == 1 and 35 <= harness.sleeps[0] <= 43


def test_okta_throttled_past_the_retries_keeps_the_checkpoint(harness: Harness, okta: OktaLogs) -> None:
    for _ in range(6):
        okta.server.throttle("/api/v1/logs", Answer.json({"errorCode": "E0000047"}, 429, headers={"Retry-After": "1"}))
    report = harness.runner(okta_source(okta)).poll()
    assert report.records == 0 and "still throttled after 6 attempts" in report.failed["okta"]
    assert harness.sleeps == [1.0] * 5
    assert harness.runner(okta_source(okta)).poll().records == 250


def test_okta_page_that_is_not_json_stops_at_the_page_before_it(harness: Harness, okta: OktaLogs) -> None:
    okta.pages[100] = b"<html>gateway error</html>"  # a proxy's page: the events behind it are asked again
    report = harness.runner(okta_source(okta)).poll()
    assert report.records == 100 and "the page is not JSON" in report.failed["okta"]
    assert harness.runner(okta_source(okta)).poll().records == 150
    assert len({event["uuid"] for event in harness.payloads()}) == len(harness.payloads()) == 250


def test_okta_wrong_token_fails_the_source_with_the_answer(harness: Harness, okta: OktaLogs) -> None:
    source = okta_source(okta)
    report = harness.runner(source).poll()
    assert not report.failed
    bad = PullRunner(harness.spool, PullCheckpoints(harness.tmp / "other"), harness.dead, lambda: [source],
                     environ={"OKTA_TOKEN": "stolen"}, sleep=harness.sleeps.append).poll()
    assert "answered 401" in bad.failed["okta"] and "Invalid token" in bad.failed["okta"]
    unset = PullRunner(harness.spool, PullCheckpoints(harness.tmp / "other"), harness.dead, lambda: [source],
                       environ={}, sleep=harness.sleeps.append).poll()
    assert "OKTA_TOKEN is not set" in unset.failed["okta"]


# --- GitHub ----------------------------------------------------------------------------------------------------

T = int(datetime(2026, 12, 1, 9, 0, tzinfo=UTC).timestamp() * 1000)


@pytest.fixture
def github() -> Iterator[GitHubAuditLog]:
    log = GitHubAuditLog("acme", "gh-secret")
    log.entries = [github_entry(number, T + number * 1000) for number in range(230)]
    with log.server:
        yield log


def github_source(github: GitHubAuditLog) -> PullSource:
    return PullSource(id=8, tenant="council", name="github", kind="github", parser="github.audit",
                      settings={"api_url": github.server.url, "org": "acme", "token": "env:GH_TOKEN",
                                "since": "2026-12-01T00:00:00Z"})


def test_github_pages_by_cursor_and_resumes_at_the_last_instant(harness: Harness, github: GitHubAuditLog) -> None:
    source = github_source(github)
    assert harness.runner(source).poll().records == 230
    assert len(github.server.requests) == 3  # 100 + 100 + 30, the last without a next link
    assert github.server.requests[0].query["phrase"] == "created:>=2026-12-01T00:00:00Z"
    assert github.server.requests[0].headers["x-github-api-version"] == "2022-11-28"
    # two more at the last instant (same millisecond) and one later: only those three come
    github.entries += [github_entry(900, T + 229_000), github_entry(901, T + 229_000), github_entry(902, T + 300_000)]
    assert harness.runner(source).poll().records == 3
    assert github.server.requests[-1].query["phrase"] == "created:>=2026-12-01T09:03:49Z"
    assert harness.runner(source).poll().records == 0
    ids = Counter(entry["_document_id"] for entry in harness.payloads())
    assert len(ids) == 233 and set(ids.values()) == {1}


def test_github_secondary_rate_limit_and_exhausted_primary_limit(harness: Harness, github: GitHubAuditLog) -> None:
    reset = int(datetime.now(UTC).timestamp()) + 30
    exhausted = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    github.server.throttle("/orgs/acme", Answer.json({"message": "API rate limit exceeded"}, 403, headers=exhausted))
    github.server.throttle("/orgs/acme", Answer.json({"message": "You have exceeded a secondary rate limit"}, 429,
                                                     headers={"Retry-After": "60"}))
    assert harness.runner(github_source(github)).poll().records == 230
    assert len(harness.sleeps) == 2 and 25 <= harness.sleeps[0] <= 31 and harness.sleeps[1] == 60


def test_github_kill_mid_paging_resumes_from_the_cursor(harness: Harness, github: GitHubAuditLog) -> None:
    source = github_source(github)
    assert harness.crash_once(source, kill_after=1) == -9
    assert harness.runner(source).poll().records == 230  # the first page again, then the rest
    ids = Counter(entry["_document_id"] for entry in harness.payloads())
    assert len(ids) == 230 and sum(ids.values()) == 330


# --- Management Activity API ------------------------------------------------------------------------------------


@pytest.fixture
def m365() -> Iterator[ManagementActivity]:
    api = ManagementActivity("tenant-guid", "app-id", "m365-secret", page=2)
    now = datetime.now(UTC)
    for number in range(5):
        api.add_blob("Audit.AzureActiveDirectory", f"aad-{number}", now - timedelta(hours=3, minutes=number),
                     [{"Id": f"aad-{number}-{i}", "Operation": "UserLoggedIn", "Workload": "AzureActiveDirectory"}
                      for i in range(3)])
    api.add_blob("Audit.Exchange", "exo-0", now - timedelta(hours=30),
                 [{"Id": "exo-0-0", "Operation": "New-InboxRule", "Workload": "Exchange"}])
    api.add_blob("Audit.Exchange", "exo-bad", now - timedelta(hours=2), None, raw=b"{truncated")
    with api.server:
        yield api


def m365_source(api: ManagementActivity, **settings: object) -> PullSource:
    return PullSource(id=9, tenant="council", name="m365", kind="m365", parser="o365.audit", settings={
        "tenant_id": "tenant-guid", "client_id": "app-id", "client_secret": "env:M365_SECRET",
        "api_url": api.server.url, "token_url": f"{api.server.url}/tenant-guid/oauth2/v2.0/token",
        "content_types": ["Audit.AzureActiveDirectory", "Audit.Exchange"], **settings})


def test_m365_subscribes_lists_pages_and_fetches_each_blob_once(harness: Harness, m365: ManagementActivity) -> None:
    source = m365_source(m365)
    report = harness.runner(source).poll()
    assert not report.failed
    assert m365.started == {"Audit.AzureActiveDirectory", "Audit.Exchange"}
    # the default first window is the last 24 hours: the 30-hour-old Exchange blob is before it
    assert report.records == 15 and report.dead_lettered == 1
    listings = [r for r in m365.server.requests if r.path.endswith("/subscriptions/content")]
    assert any("nextPage" in r.query for r in listings)  # 5 blobs at 2 a page: NextPageUri followed
    letter = next(harness.dead.list(tenant="council"))
    assert "content blob: the page is not JSON" in letter["reason"]
    assert letter["origin"].startswith("m365 Audit.Exchange")
    # subscriptions already on (AF20024) and nothing new: nothing again; a new blob comes once
    assert harness.runner(source).poll().records == 0
    m365.add_blob("Audit.AzureActiveDirectory", "aad-new", datetime.now(UTC) - timedelta(minutes=1),
                  [{"Id": "aad-new-0", "Operation": "Add member to role."}])
    assert harness.runner(source).poll().records == 1
    ids = Counter(record["Id"] for record in harness.payloads())
    assert len(ids) == 16 and set(ids.values()) == {1}


def test_m365_since_reaches_back_to_older_content_within_retention(harness: Harness, m365: ManagementActivity) -> None:
    checkpoints = PullCheckpoints(harness.checkpoint_dir)
    source = m365_source(m365, content_types=["Audit.Exchange"])
    start = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S")
    checkpoints.save(source, {"types": {"Audit.Exchange": {"start": start, "seen": {}}}})
    report = harness.runner(source).poll()
    assert report.records == 1 and report.dead_lettered == 1  # two 24-hour windows listed
    windows = [r.query["startTime"] for r in m365.server.requests if r.path.endswith("/subscriptions/content")]
    assert len(windows) == 3


def test_m365_throttled_blob_is_retried_after_retry_after(harness: Harness, m365: ManagementActivity) -> None:
    m365.server.throttle("/api/v1.0/tenant-guid/activity/feed/audit/", Answer.json(
        {"error": {"code": "AF429", "message": "Too many requests."}}, 429, headers={"Retry-After": "5"}))
    report = harness.runner(m365_source(m365)).poll()
    assert report.records == 15 and harness.sleeps == [5.0]


def test_m365_kill_after_a_blob_resumes_without_losing_a_blob(harness: Harness, m365: ManagementActivity) -> None:
    source = m365_source(m365)
    assert harness.crash_once(source, kill_after=3) == -9
    harness.runner(source).poll()
    ids = Counter(record["Id"] for record in harness.payloads())
    assert len(ids) == 15 and sum(ids.values()) == 18  # the third blob twice, nothing missing
