"""Screenshots of the console for the README: ``python -m tests.console.screenshots [--out docs]``.

Serves the real case API on a temporary SQLite database seeded through its API with a small city
(five members, cases at every stage, a campaign seen at three members), signs in as an analyst in
headless Chromium and saves the queue (``console-queue.png``) and the campaign's case page
(``console-case.png``). Needs what the browser tests need (``make setup``).
"""

from __future__ import annotations

import argparse
import base64
import itertools
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from case_api.auth.models import Role
from tests.console.harness import ConsoleWorld, browser_missing, chromium, evidence_alert, live_case_api, sign_in

MEMBERS = {
    "northgate-hospital": "Northgate Hospital NHS Trust",
    "riverside-school": "Riverside Academy",
    "city-council": "City Council",
    "elm-street-gp": "Elm Street GP Practice",
    "harbour-charity": "Harbour Food Bank",
}
ATTACKER = "198.51.100.23"
_numbers = itertools.count(1)


def _alert(tenant: str, title: str, level: str, tags: list[str], dataset: str, entities: dict[str, list[str]],
           minutes_ago: int) -> dict[str, Any]:
    number = next(_numbers)
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    return {
        "id": f"shot-{number:05d}",
        "@timestamp": at.isoformat(),
        "organization": {"id": tenant},
        "rule": {"id": f"rule-{abs(hash(title)) % 10**8:08d}", "title": title, "level": level, "tags": tags},
        "event": {"ids": [f"event-{number}-{n}" for n in range(3)], "dataset": dataset},
        "entities": entities,
    }


def seed_city(world: ConsoleWorld) -> int:
    """A small city's morning; the id of the hospital's case in the SSH campaign."""
    for tenant, name in MEMBERS.items():
        world.soc.add_tenant(tenant, name)
    world.add_user("ana.analyst", Role.SOC_ANALYST)
    campaign_case = 0
    for n, tenant in enumerate(("northgate-hospital", "city-council", "riverside-school")):
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=40 - n * 12)
        lines = [
            f"<38>1 {(start + timedelta(seconds=4 * k)).isoformat().replace('+00:00', 'Z')} {tenant}-bastion sshd "
            f"{3100 + k} - - {'Accepted' if k == 5 else 'Failed'} password for root from {ATTACKER} "
            f"port {50110 + k} ssh2"
            for k in range(6)
        ]
        alert = evidence_alert(
            tenant, world.store_syslog(tenant, lines), alert_id=f"{tenant}-root-after-brute-force",
            title="SSH Login As Root Accepted After Brute Force", level="high",
            tags=["attack.t1110.001", "attack.t1078"],
            entities={"source.ip": [ATTACKER], "user.name": ["root"], "host.name": [f"{tenant}-bastion"]},
        )
        cases = world.soc.ingest(alert)["cases"]
        campaign_case = campaign_case or cases[0]
    singles = [
        ("city-council", "AWS CloudTrail Logging Disabled", "critical", ["attack.t1562.008"], "aws.cloudtrail",
         {"cloud.account.id": ["143434273843"], "user.name": ["ci-deployer"]}, 8),
        ("elm-street-gp", "Microsoft 365 Mailbox Forwarding Rule to External Domain", "high", ["attack.t1114.003"],
         "o365.audit", {"user.name": ["reception@elmstreetgp.example"]}, 95),
        ("harbour-charity", "Entra ID Sign-in From Anonymising Proxy", "medium", ["attack.t1090.003"],
         "azure.signinlogs", {"user.name": ["volunteer.lead@harbour.example"], "source.ip": ["192.0.2.77"]}, 150),
        ("riverside-school", "GCP Service Account Key Created", "medium", ["attack.t1098.001"], "gcp.audit",
         {"user.name": ["it-admin@riverside.example"], "cloud.account.id": ["riverside-prod"]}, 210),
        ("northgate-hospital", "Sudo Privilege Escalation by Unexpected User", "medium", ["attack.t1548.003"],
         "system.auth", {"user.name": ["pacs-service"], "host.name": ["pacs-02"]}, 330),
        ("city-council", "Okta MFA Factor Reset by Administrator", "low", ["attack.t1556.006"], "okta.system",
         {"user.name": ["helpdesk.admin"]}, 480),
    ]
    for tenant, title, level, tags, dataset, entities, minutes_ago in singles:
        world.soc.ingest(_alert(tenant, title, level, tags, dataset, entities, minutes_ago))
    # One case already taken: assigned and in progress.
    analyst = world.headers("ana.analyst")
    taken = world.api.get("/api/v1/cases", params={"tenant": "elm-street-gp"}, headers=analyst).json()[0]["id"]
    response = world.api.patch(f"/api/v1/cases/{taken}", json={"assignee": "ana.analyst", "status": "in_progress"},
                               headers=analyst)
    assert response.status_code == 200, response.text
    return int(campaign_case)


def full_page_png(driver: Any) -> bytes:
    """The whole page, not only the window (Chromium's DevTools screenshot beyond the viewport)."""
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    return base64.b64decode(shot["data"])


def take(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as home, live_case_api(Path(home)) as world, chromium() as driver:
        campaign_case = seed_city(world)
        world.keys["analyst"] = world.keys["ana.analyst"]
        sign_in(driver, world, "analyst", next_path="/console/queue")
        written = []
        for name, path in (("console-queue.png", "/console/queue"), ("console-case.png",
                                                                      f"/console/cases/{campaign_case}")):
            driver.get(f"{world.url}{path}")
            # The case page: the last raw record (the accepted login) unfolded, as an analyst would look at it.
            driver.execute_script("const d = document.querySelectorAll('#evidence details'); "
                                  "if (d.length) { d[d.length - 1].open = true; }")
            target = out / name
            target.write_bytes(full_page_png(driver))
            written.append(target)
        return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for the PNG files (default: docs)")
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    for path in take(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
