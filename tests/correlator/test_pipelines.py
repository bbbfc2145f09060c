"""Routing, field mapping and SQL generation (no Spark)."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from sigma.collection import SigmaCollection
from sigma.rule import SigmaLogSource

from citysoc.deadletter import DeadLetterStore
from collectors.ingest import ingest_files
from correlator.compiler import RuleCompiler
from correlator.compiler.backend import CitySocSparkBackend, ipv4_cidr_expression
from correlator.compiler.logsources import CLOUDTRAIL, LINUX_ANY, LINUX_AUDITD, LINUX_SYSMON_ROUTES, find_route
from correlator.engine.detection import run_detection
from correlator.sql import resolve_field
from tests.collectors.samples import AUDIT_GETCAP, AUDIT_LOOKALIKES, AUDIT_MEMFD_RAW, AUDIT_SPLIT_ENRICHED, sysmon_line
from tests.correlator.builders import lake


def _convert(yaml_text: str) -> str:
    rule = SigmaCollection.from_yaml(yaml_text).rules[0]
    route = find_route(rule.logsource)
    assert route is not None
    backend = CitySocSparkBackend(route.pipeline(), datasets=route.datasets, raw_log_field=route.raw_field)
    return backend.condition(str(backend.convert_rule(rule)[0])).sql


@pytest.mark.parametrize(("product", "service", "category", "datasets"), [
    ("aws", "cloudtrail", None, ("aws.cloudtrail",)),
    ("linux", "sshd", None, ("system.auth",)),
    ("linux", "auth", None, ("system.auth",)),
    ("linux", "syslog", None, ("system.auth", "system.syslog")),
    ("linux", None, None, ("system.auth", "system.syslog")),
    ("linux", "cron", None, ("system.auth", "system.syslog")),
    ("linux", "auditd", None, ("auditd.log",)),
    ("linux", None, "process_creation", ("sysmon_linux.log",)),
    ("linux", None, "network_connection", ("sysmon_linux.log",)),
    ("linux", None, "file_event", ("sysmon_linux.log",)),
])
def test_routes(product: str, service: str | None, category: str | None, datasets: tuple[str, ...]) -> None:
    route = find_route(SigmaLogSource(product=product, service=service, category=category))
    assert route is not None and route.datasets == datasets


@pytest.mark.parametrize("logsource", [
    SigmaLogSource(product="windows", service="security"),
    SigmaLogSource(product="windows", category="process_creation"),
    SigmaLogSource(product="linux", category="registry_event"),
    SigmaLogSource(product="linux", category="process_creation", service="auditd"),
])
def test_uncollected_logsources_have_no_route(logsource: SigmaLogSource) -> None:
    assert find_route(logsource) is None


def test_cloudtrail_names_map_to_ecs() -> None:
    assert CLOUDTRAIL.map_field("eventName") == "event.action"
    assert CLOUDTRAIL.map_field("userIdentity.sessionContext.sessionIssuer.userName") == (
        "aws.cloudtrail.user_identity.session_context.session_issuer.user_name")
    assert CLOUDTRAIL.map_field("requestParameters.userData") == "aws.cloudtrail.request_parameters.userData"
    assert CLOUDTRAIL.map_field("source.ip") == "source.ip"  # ECS passes through
    assert LINUX_ANY.map_field("system.auth.ssh.event") == "system.auth.ssh.event"


def test_json_fields_read_with_get_json_object() -> None:
    assert resolve_field("aws.cloudtrail.request_parameters.userData") == (
        "get_json_object(`aws`.`cloudtrail`.`request_parameters`, '$.userData')")
    assert resolve_field("aws.cloudtrail.additional_eventdata.some key") == (
        "get_json_object(`aws`.`cloudtrail`.`additional_eventdata`, '$[\\'some key\\']')")
    assert resolve_field("@timestamp") == "`@timestamp`"
    assert resolve_field("no.such.field") is None


def test_sshd_adds_program_condition_and_keywords_search_message() -> None:
    sql = _convert("""
title: t
logsource: {product: linux, service: sshd}
detection:
    keywords: ['Corrupted MAC on input']
    condition: keywords
""")
    # the program names OpenSSH logs under (sshd-session, sshd-auth since 9.8), compared lower-cased
    assert "`_lc__process__name` IN ('sshd', 'sshd-session', 'sshd-auth')" in sql
    assert "contains(`_lc__message`, 'corrupted mac on input')" in sql


def test_cloudtrail_keywords_search_the_raw_record() -> None:
    sql = _convert("""
title: t
logsource: {product: aws, service: cloudtrail}
detection:
    keywords: ['AKIAEXAMPLE']
    condition: keywords
""")
    assert "`_lc__event__original`" in sql  # lower(event.original), computed once per row


def test_ipv4_cidr_is_a_range_check_from_builtins() -> None:
    sql = ipv4_cidr_expression("`source`.`ip`", ip_network("10.0.0.0/8"))  # type: ignore[arg-type]
    assert "BETWEEN 167772160 AND 184549375" in sql
    assert "ip_cidr_contains" not in sql and "try_ip_as_binary" not in sql


def test_unknown_field_and_uncollected_source_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.yml").write_text("""
title: Unknown field
id: 11111111-1111-4111-8111-111111111111
logsource: {product: aws, service: cloudtrail}
detection:
    selection: {eventName: X, status: success}
    condition: selection
""")
    (tmp_path / "b.yml").write_text("""
title: Windows
id: 22222222-2222-4222-8222-222222222222
logsource: {product: windows, service: security}
detection:
    selection: {EventID: 4625}
    condition: selection
""")
    (tmp_path / "c.yml").write_text("title: [unclosed\n")
    (tmp_path / "d.yml").write_text("title: no detection\nid: 33333333-3333-4333-8333-333333333333\n")
    ruleset = RuleCompiler().compile([tmp_path])
    reasons = {(u.id, u.reason.split(":")[0]) for u in ruleset.unsupported}
    assert ("11111111-1111-4111-8111-111111111111", "field status has no source in aws.cloudtrail") in reasons
    assert ("22222222-2222-4222-8222-222222222222",
            "log source product=windows/service=security is not collected") in reasons
    assert any(path.endswith("c.yml") and "not valid YAML" in reason
               for path, reason in ((u.path or "", u.reason) for u in ruleset.unsupported))
    assert sum((u.path or "").endswith("d.yml") for u in ruleset.unsupported) == 1
    assert ruleset.rules == []


def test_sysmon_names_map_to_ecs_or_event_data() -> None:
    route = LINUX_SYSMON_ROUTES["process_creation"]
    assert route.map_field("Image") == "process.executable"
    assert route.map_field("ParentCommandLine") == "process.parent.command_line"
    assert route.map_field("User") == "user.name"
    assert route.map_field("LogonId") == "winlog.event_data.LogonId"
    assert route.map_field("NoSuchSysmonField") == "NoSuchSysmonField"  # unknown: reported, not guessed


def test_sysmon_categories_add_their_event_ids() -> None:
    sql = _convert("""
title: t
logsource: {product: linux, category: network_connection}
detection:
    selection: {Initiated: 'true', DestinationPort: 4444, Image|endswith: /bash}
    condition: selection
""")
    assert "`_lc__event__code` = '3'" in sql
    assert "Initiated" in sql  # no ECS home: read from winlog.event_data
    assert "4444" in sql and "'4444'" not in sql  # destination.port is a long: compared as a number


def test_unknown_sysmon_field_is_unsupported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.yml").write_text("""
title: Registry on Linux
id: 55555555-5555-4555-8555-555555555555
logsource: {product: linux, category: process_creation}
detection:
    selection: {TargetObject: 'HKLM'}
    condition: selection
""")
    (unsupported,) = RuleCompiler().compile([tmp_path]).unsupported
    assert unsupported.reason == "field TargetObject has no source in sysmon_linux.log"


def test_auditd_names_are_keys_of_the_record() -> None:
    assert LINUX_AUDITD.map_field("type") == "auditd.log.record_type"
    assert LINUX_AUDITD.map_field("a0") == "auditd.log.fields.a0"
    assert LINUX_AUDITD.map_field("SYSCALL") == "auditd.log.fields.SYSCALL"
    assert LINUX_AUDITD.map_field("message") == "message"  # ECS names pass through
    assert resolve_field(LINUX_AUDITD.map_field("a1[0]")) == (
        "get_json_object(`auditd`.`log`.`fields`, '$[\\'a1[0]\\']')")


def test_auditd_numbers_compare_as_text() -> None:
    sql = _convert("""
title: t
logsource: {product: linux, service: auditd}
detection:
    selection: {type: SYSCALL, euid: 33, SYSCALL: execve}
    condition: selection
""")
    assert "'33'" in sql  # a JSON value is text: euid=33 must not become a numeric cast of every record's euid


SIGMA_LINUX = {
    # rule id: file below ../shared/corpora/sigmahq/rules/linux
    "e2072cab-8c9a-459b-b63c-40ae79e27031": "process_creation/proc_creation_lnx_base64_decode.yml",
    "ddb26b76-4447-4807-871f-1b035b2bfa5d": "file_event/file_event_lnx_persistence_sudoers_files.yml",
    "dbfc7c98-04ab-4ab7-aa94-c74d22aa7376": "network_connection/net_connection_lnx_susp_malware_callback_port.yml",
    "fe10751f-1995-40a5-aaa2-c97ccb4123fe": "auditd/execve/lnx_auditd_capabilities_discovery.yml",
    "2dad0cba-c62a-4a4f-949f-5f6ecd619769": "auditd/syscall/lnx_auditd_split_file_into_pieces.yml",
    "a7af2487-9c2f-42e4-9bb9-ff961f0561d5": "auditd/lnx_auditd_audio_capture.yml",
}


@pytest.mark.slow
def test_sigmahq_linux_rules_fire_on_parsed_sysmon_and_auditd_events(spark, corpora, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Real SigmaHQ rules, real parsers, real engine: each fires on its event and not on the look-alike."""
    rules_dir = corpora / "sigmahq" / "rules" / "linux"
    for rule_id, name in SIGMA_LINUX.items():
        assert rule_id in (rules_dir / name).read_text(), name
    syslog = [
        sysmon_line(1, {"Image": "/usr/bin/base64", "CommandLine": "base64 --decode /tmp/p.b64"}, record=1),
        sysmon_line(1, {"Image": "/usr/bin/base32", "CommandLine": "base32 -d /tmp/p.b32"}, record=2),  # look-alike
        sysmon_line(11, {"Image": "/usr/bin/tee", "TargetFilename": "/etc/sudoers.d/zz-backdoor"}, record=3),
        sysmon_line(11, {"Image": "/usr/bin/dpkg", "TargetFilename": "/etc/sudoers.d/README.dpkg-new"}, record=4),
        sysmon_line(3, {"Image": "/tmp/.x/agent", "Protocol": "tcp", "Initiated": "true", "SourceIp": "10.0.0.5",
                        "SourcePort": "50000", "DestinationIp": "198.51.100.7", "DestinationPort": "4444"}, record=5),
        sysmon_line(3, {"Image": "/tmp/.x/agent", "Protocol": "tcp", "Initiated": "true", "SourceIp": "10.0.0.5",
                        "SourcePort": "50001", "DestinationIp": "10.0.0.9", "DestinationPort": "4444"}, record=6),
        *(f"Mar  1 12:00:00 web01 audisp-syslog: {record}" for record in AUDIT_GETCAP),
    ]
    (tmp_path / "syslog").write_text("\n".join(syslog) + "\n", encoding="utf-8")
    (tmp_path / "audit.log").write_text(
        "\n".join([*AUDIT_SPLIT_ENRICHED, *AUDIT_LOOKALIKES, AUDIT_MEMFD_RAW]) + "\n", encoding="utf-8")
    store, letters = lake(tmp_path), DeadLetterStore(tmp_path / "deadletter")
    for source, name in (("syslog", "syslog"), ("auditd", "audit.log")):
        report = ingest_files(tenant="council", source=source, paths=[tmp_path / name], store=store,
                              dead_letters=letters, year=2026)
        assert report.dead_lettered == 0

    ruleset = RuleCompiler(spark).compile([rules_dir / name for name in SIGMA_LINUX.values()])
    assert ruleset.unsupported == [] and len(ruleset.rules) == len(SIGMA_LINUX)
    result = run_detection(spark, store=lake(tmp_path), alerts_dir=tmp_path / "alerts", rules=ruleset)
    assert result.events == {"sysmon_linux.log": 6, "auditd.log": 11}
    assert result.matches == {
        "sysmon_linux.log": {"e2072cab-8c9a-459b-b63c-40ae79e27031": 1, "ddb26b76-4447-4807-871f-1b035b2bfa5d": 1,
                             "dbfc7c98-04ab-4ab7-aa94-c74d22aa7376": 1},
        "auditd.log": {"fe10751f-1995-40a5-aaa2-c97ccb4123fe": 1, "2dad0cba-c62a-4a4f-949f-5f6ecd619769": 1,
                       "a7af2487-9c2f-42e4-9bb9-ff961f0561d5": 1},
    }
    by_rule = {alert["rule"]["id"]: alert for alert in result.alerts}
    assert by_rule["e2072cab-8c9a-459b-b63c-40ae79e27031"]["entities"]["host.name"] == ["web01"]


def test_entra_sigma_names_read_where_the_parser_puts_them() -> None:
    """SigmaHQ's Log Analytics names for sign-ins and audits map to the fields `collectors.cloud` fills."""
    import json

    from collectors.cloud import normalise_native
    from correlator.compiler.logsources import AZURE_AUDIT, AZURE_SIGNIN

    signin = normalise_native("azure.signinlogs", {
        "time": "2026-01-01T00:00:00Z", "category": "SignInLogs", "resultType": "50074",
        "properties": {"id": "s", "authenticationRequirement": "singleFactorAuthentication",
                       "deviceDetail": {"trustType": "Workplace"}, "riskState": "atRisk", "clientAppUsed": "IMAP4"}},
        tenant="t")
    properties = json.loads(signin["azure"]["signinlogs"]["properties"])
    for name, value in (("AuthenticationRequirement", "singleFactorAuthentication"), ("RiskState", "atRisk"),
                        ("DeviceDetail.trusttype", "Workplace"), ("ClientApp", "IMAP4")):
        path = AZURE_SIGNIN.map_field(name).removeprefix("azure.signinlogs.properties.").split(".")
        found: object = properties
        for key in path:
            found = found[key]  # type: ignore[index]
        assert found == value, name
    assert AZURE_SIGNIN.map_field("ResultType") == "azure.signinlogs.result_type"
    assert signin["azure"]["signinlogs"]["result_type"] == "50074"
    assert resolve_field(AZURE_SIGNIN.map_field("RiskState")) == (
        "get_json_object(`azure`.`signinlogs`.`properties`, '$.risk_state')")
    audit = normalise_native("azure.auditlogs", {
        "time": "2026-01-01T00:00:00Z", "category": "AuditLogs", "operationName": "Add member to role",
        "properties": {"id": "a", "category": "RoleManagement", "result": "success",
                       "loggedByService": "Core Directory"}},
        tenant="t")
    audit_properties = json.loads(audit["azure"]["auditlogs"]["properties"])
    assert AZURE_AUDIT.map_field("properties.message") == "azure.auditlogs.operation_name"
    assert audit["azure"]["auditlogs"]["operation_name"] == "Add member to role"
    for name, value in (("Category", "RoleManagement"), ("Status", "success"), ("LoggedByService", "Core Directory")):
        assert audit_properties[AZURE_AUDIT.map_field(name).rsplit(".", 1)[-1]] == value, name
