"""SigmaHQ's and CitySOC's cloud rules fire on the shared samples (`../shared/corpora/cloud`), parsed by the real
collectors and stored as `soc ingest` stores them: one Spark run for every dataset and rule.

Most samples are panther-analysis rule tests, stored after Panther's own parsing (the corpus README and the
`*.labels.ndjson` files say which). `native` undoes what Panther changed, nothing more: top-level `p_*` keys
dropped, `at_sign_*` keys renamed back to `@*`, GCP's `callerIP` back to `callerIp`, and Exchange records'
lower-cased keys back to the Management Activity API's names. Panther reuses one `Id` for every Exchange test
record, and one `_document_id` for two GitHub ones; each gets its own here, or the store would keep one (the
provider id is the event id).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from citysoc.deadletter import DeadLetterStore
from collectors.ingest import ingest_files
from correlator.compiler import DEFAULT_RULES_DIR, RuleCompiler
from correlator.engine.detection import run_detection
from tests.correlator.builders import lake

pytestmark = pytest.mark.slow

# SigmaHQ rules (id: file below ../shared/corpora/sigmahq/rules)
SIGMAHQ = {
    "2b7d6fc0-71ac-4cf7-8ed1-b5788ee5257a": "cloud/azure/signin_logs/azure_account_lockout.yml",
    "413d4a81-6c98-4479-9863-014785fd579c": "identity/okta/okta_admin_role_assigned_to_user_or_group.yml",
    "8622c92d-c00e-463c-b09d-fd06166f6794": "application/github/audit/github_disable_high_risk_configuration.yml",
}
OWN = ("gcp/gcp_service_account_key_created.yml", "github/github_branch_protection_disabled.yml",
       "m365/exchange_mailbox_forwarding.yml")
EXCHANGE_KEYS = {key.lower(): key for key in (
    "ClientIP", "CreationTime", "ExternalAccess", "Id", "ObjectId", "Operation", "OrganizationId", "OrganizationName",
    "OriginatingServer", "Parameters", "RecordType", "ResultStatus", "UserId", "UserKey", "UserType", "Workload")}
# Provider ids Panther's tests reuse for different records (an identical record repeated keeps its id: the store
# rightly keeps it once, as the Okta admin grant shows).
REUSED_IDS = {"o365.audit": "Id", "github.audit": "_document_id"}
SAMPLES = {  # dataset: (folder, derived file stem, panther rule ids taken)
    "azure.signinlogs": ("entra-signin", "panther_azure_audit.signin", {"Azure.Audit.ExcessiveAccountLockouts"}),
    "okta.system": ("okta", "panther_okta_systemlog", {"Okta.AdminRoleAssigned", "Okta.APIKeyCreated"}),
    "github.audit": ("github-audit", "panther_github_audit", {
        "GitHub.Advanced.Security.Change", "GitHub.Branch.ProtectionDisabled", "Standard.MFADisabled"}),
    "gcp.audit": ("gcp-audit", "panther_gcp_auditlog", {"GCP.Service.Account.or.Keys.Created"}),
    "o365.audit": ("m365", "panther_microsoft365_audit", {"Microsoft365.Exchange.External.Forwarding"}),
}


def native(value: Any, *, top: bool = True) -> Any:
    """A Panther-parsed record back in its vendor shape (see the module docstring)."""
    if isinstance(value, list):
        return [native(item, top=False) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if top and key.startswith("p_"):
            continue
        name = "@" + key.removeprefix("at_sign_") if key.startswith("at_sign_") else key
        name = "callerIp" if name == "callerIP" else name
        out[name] = native(item, top=False)
    return out


def samples(cloud: Path, folder: str, stem: str, rules: set[str]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    base = cloud / folder / "panther-analysis" / "derived"
    records = (base / f"{stem}.records.ndjson").read_text().splitlines()
    labels = (base / f"{stem}.labels.ndjson").read_text().splitlines()
    for line, label_line in zip(records, labels, strict=True):
        label = json.loads(label_line)
        if label["rule_id"] in rules:
            yield native(json.loads(line)), label


def test_sigmahq_and_own_cloud_rules_fire_on_the_samples(spark, corpora: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    cloud, sigmahq = corpora / "cloud", corpora / "sigmahq" / "rules"
    if not cloud.is_dir():
        pytest.skip(f"cloud audit samples not found at {cloud}")
    taken: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for dataset, (folder, stem, rules) in SAMPLES.items():
        taken[dataset] = list(samples(cloud, folder, stem, rules))
        records = [record for record, _ in taken[dataset]]
        if dataset == "o365.audit":
            records = [{EXCHANGE_KEYS.get(key, key): value for key, value in record.items()} for record in records]
        id_key = REUSED_IDS.get(dataset)
        for number, record in enumerate(records):
            if id_key in record:
                record[id_key] = f"{record[id_key]}-{number}"
        (tmp_path / f"{dataset}.ndjson").write_bytes(b"\n".join(orjson.dumps(record) for record in records) + b"\n")
    store, letters = lake(tmp_path), DeadLetterStore(tmp_path / "deadletter")
    for dataset in SAMPLES:
        report = ingest_files(tenant="council", source=dataset, paths=[tmp_path / f"{dataset}.ndjson"], store=store,
                              dead_letters=letters)
        assert report.dead_lettered == 0, (dataset, [letter["reason"] for letter in letters.list(tenant="council")][:3])

    for rule_id, name in SIGMAHQ.items():
        assert rule_id in (sigmahq / name).read_text(), name
    ruleset = RuleCompiler(spark).compile([*(sigmahq / name for name in SIGMAHQ.values()),
                                           *(DEFAULT_RULES_DIR / name for name in OWN)])
    assert ruleset.unsupported == []
    own = {Path(rule.path or "").relative_to(DEFAULT_RULES_DIR).as_posix(): rule.id for rule in ruleset.rules
           if DEFAULT_RULES_DIR in Path(rule.path or "").parents}
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)

    def expected(dataset: str, wanted: Any) -> int:
        return sum(1 for record, label in taken[dataset] if wanted(record, label))

    lockout = expected("azure.signinlogs", lambda r, _: r["properties"]["status"]["errorCode"] == 50053)
    admin = len({r["uuid"] for r, label in taken["okta.system"] if r["eventType"] == "user.account.privilege.grant"})
    high_risk = {"business_advanced_security.disabled", "org.disable_two_factor_requirement"}
    github_high_risk = expected("github.audit", lambda r, _: r["action"] in high_risk)
    branch = expected("github.audit", lambda r, _: r["action"] == "protected_branch.destroy")
    key = expected("gcp.audit", lambda r, _: r["protoPayload"]["methodName"].endswith("CreateServiceAccountKey"))
    forwarding = expected("o365.audit", lambda r, _: any(
        p["Name"] in ("ForwardingSmtpAddress", "ForwardTo", "RedirectTo") for p in r["parameters"]))
    assert (lockout, admin, github_high_risk, branch, key) == (2, 1, 2, 1, 1)
    assert forwarding >= 8
    assert result.matches == {
        "azure.signinlogs": {"2b7d6fc0-71ac-4cf7-8ed1-b5788ee5257a": lockout},
        "okta.system": {"413d4a81-6c98-4479-9863-014785fd579c": admin},
        "github.audit": {"8622c92d-c00e-463c-b09d-fd06166f6794": github_high_risk,
                         own["github/github_branch_protection_disabled.yml"]: branch},
        "gcp.audit": {own["gcp/gcp_service_account_key_created.yml"]: key},
        "o365.audit": {own["m365/exchange_mailbox_forwarding.yml"]: forwarding},
    }
    # the alerts name who and from where, as the integrations' ECS fields carry them
    alerts = {alert["rule"]["id"]: alert for alert in result.alerts}
    assert alerts[own["gcp/gcp_service_account_key_created.yml"]]["entities"]["user.email"]
    assert alerts["2b7d6fc0-71ac-4cf7-8ed1-b5788ee5257a"]["entities"]["user.email"]
