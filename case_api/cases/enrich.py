"""What a case learns from each alert it takes: ATT&CK techniques, observables and playbook tasks.

Runs inside the transaction that adds the alert, so it is audited by the alert's ``alert_added`` line.
"""

from __future__ import annotations

import re
from functools import cache

from sqlalchemy.orm import Session

from case_api.alerts.models import Alert
from case_api.cases.models import Case
from case_api.cases.work_models import CaseObservable, CaseTask, ObservableKind
from case_api.db import insert_for, utcnow
from citysoc.playbooks import Playbook, load_playbooks

_TECHNIQUE_TAG = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.IGNORECASE)

#: Alert entity fields that name an observable of each kind.
OBSERVABLE_FIELDS: dict[str, ObservableKind] = {
    "source.ip": ObservableKind.IP,
    "destination.ip": ObservableKind.IP,
    "client.ip": ObservableKind.IP,
    "user.name": ObservableKind.USER,
    "user.target.name": ObservableKind.USER,
    "user.email": ObservableKind.USER,
    "host.name": ObservableKind.HOST,
    "host.hostname": ObservableKind.HOST,
    "cloud.account.id": ObservableKind.CLOUD_ACCOUNT,
    "dns.question.name": ObservableKind.DOMAIN,
    "url.domain": ObservableKind.DOMAIN,
    "destination.domain": ObservableKind.DOMAIN,
    "source.domain": ObservableKind.DOMAIN,
    "file.hash.sha256": ObservableKind.HASH,
    "file.hash.sha1": ObservableKind.HASH,
    "file.hash.md5": ObservableKind.HASH,
    "process.hash.sha256": ObservableKind.HASH,
    "process.hash.sha1": ObservableKind.HASH,
    "process.hash.md5": ObservableKind.HASH,
}
#: Observables taken from one alert, at most (a correlation may name hundreds of users).
MAX_OBSERVABLES_PER_ALERT = 50


def techniques(tags: list[str]) -> list[str]:
    """ATT&CK technique ids in Sigma tags: ``attack.t1562.008`` -> ``T1562.008``."""
    found = (_TECHNIQUE_TAG.match(tag) for tag in tags)
    return sorted({match.group(1).upper() for match in found if match})


@cache
def shipped_playbooks() -> tuple[Playbook, ...]:
    """The playbooks in ``playbooks/`` (validated by the playbook tests), read once."""
    return tuple(load_playbooks())


def enrich_case(*, session: Session, case: Case, alert: Alert, playbooks: tuple[Playbook, ...] | None = None) -> None:
    found = techniques(alert.rule_tags)
    if not set(found) <= set(case.techniques or []):
        case.techniques = sorted(set(case.techniques or []) | set(found))
    _add_observables(session=session, case=case, alert=alert)
    for playbook in shipped_playbooks() if playbooks is None else playbooks:
        if playbook.matches(rule_ids=[alert.rule_id], tags=alert.rule_tags):
            _add_playbook_tasks(session=session, case=case, playbook=playbook)


def _add_observables(*, session: Session, case: Case, alert: Alert) -> None:
    rows = []
    for field, kind in OBSERVABLE_FIELDS.items():
        for value in alert.entities.get(field, []):
            if value:
                rows.append({"case_id": case.id, "tenant_id": case.tenant_id, "kind": kind.value, "value": value[:1024],
                             "tlp": "amber", "source": "alert", "created_at": utcnow()})
    if rows:
        insert = insert_for(session)
        session.execute(
            insert(CaseObservable).values(rows[:MAX_OBSERVABLES_PER_ALERT]).on_conflict_do_nothing(
                index_elements=["case_id", "kind", "value"]
            )
        )


def _add_playbook_tasks(*, session: Session, case: Case, playbook: Playbook) -> None:
    """One task per action step of the playbook, once per case."""
    rows = [
        {"case_id": case.id, "title": str(step.get("name") or step_id)[:500], "status": "open",
         "playbook_id": playbook.id, "step_id": step_id, "created_at": utcnow()}
        for step_id, step in playbook.document.get("workflow", {}).items()
        if step.get("type") == "action"
    ]
    if rows:
        insert = insert_for(session)
        session.execute(
            insert(CaseTask).values(rows).on_conflict_do_nothing(index_elements=["case_id", "playbook_id", "step_id"])
        )
