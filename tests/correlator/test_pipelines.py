"""Routing, field mapping and SQL generation (no Spark)."""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from sigma.collection import SigmaCollection
from sigma.rule import SigmaLogSource

from correlator.backend import CitySocSparkBackend, ipv4_cidr_expression, resolve_field
from correlator.compiler import RuleCompiler
from correlator.pipelines import CLOUDTRAIL, LINUX_ANY, route_for


def _convert(yaml_text: str) -> str:
    rule = SigmaCollection.from_yaml(yaml_text).rules[0]
    route = route_for(rule.logsource)
    assert route is not None
    backend = CitySocSparkBackend(route.pipeline(), datasets=route.datasets, raw_log_field=route.raw_field)
    return str(backend.convert_rule(rule)[0])


@pytest.mark.parametrize(("product", "service", "category", "datasets"), [
    ("aws", "cloudtrail", None, ("aws.cloudtrail",)),
    ("linux", "sshd", None, ("system.auth",)),
    ("linux", "auth", None, ("system.auth",)),
    ("linux", "syslog", None, ("system.auth", "system.syslog")),
    ("linux", None, None, ("system.auth", "system.syslog")),
    ("linux", "cron", None, ("system.auth", "system.syslog")),
])
def test_routes(product: str, service: str | None, category: str | None, datasets: tuple[str, ...]) -> None:
    route = route_for(SigmaLogSource(product=product, service=service, category=category))
    assert route is not None and route.datasets == datasets


@pytest.mark.parametrize("logsource", [
    SigmaLogSource(product="windows", service="security"),
    SigmaLogSource(product="linux", category="process_creation"),
    SigmaLogSource(product="linux", service="auditd"),
    SigmaLogSource(product="azure", service="signinlogs"),
])
def test_uncollected_logsources_have_no_route(logsource: SigmaLogSource) -> None:
    assert route_for(logsource) is None


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
    assert "lower(`process`.`name`) = lower('sshd')" in sql
    assert "contains(lower(`message`), lower('Corrupted MAC on input'))" in sql


def test_cloudtrail_keywords_search_the_raw_record() -> None:
    sql = _convert("""
title: t
logsource: {product: aws, service: cloudtrail}
detection:
    keywords: ['AKIAEXAMPLE']
    condition: keywords
""")
    assert "`event`.`original`" in sql


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
    (tmp_path / "e.yml").write_text("""
title: IPv6 range
id: 44444444-4444-4444-8444-444444444444
logsource: {product: linux, service: sshd}
detection:
    selection: {source.ip|cidr: '2001:db8::/32'}
    condition: selection
""")
    ruleset = RuleCompiler().compile([tmp_path])
    reasons = {(u.id, u.reason.split(":")[0]) for u in ruleset.unsupported}
    assert ("11111111-1111-4111-8111-111111111111", "field status has no source in aws.cloudtrail") in reasons
    assert ("22222222-2222-4222-8222-222222222222",
            "log source product=windows/service=security is not collected") in reasons
    assert any(path.endswith("c.yml") and "not valid YAML" in reason
               for path, reason in ((u.path or "", u.reason) for u in ruleset.unsupported))
    assert sum((u.path or "").endswith("d.yml") for u in ruleset.unsupported) == 1
    assert ("44444444-4444-4444-8444-444444444444", "IPv6 CIDR 2001") in reasons
    assert ruleset.rules == []
