"""The onboarding text: what it names for each kind (rsyslogd checks the snippets in test_real_clients)."""

from __future__ import annotations

import shlex

import pytest

from citysoc.onboarding import KINDS, PARTNER_CERT, OnboardingError, instructions, partner_config


def test_tls_snippets_name_the_ca_the_peer_and_the_client_certificate() -> None:
    config = partner_config("syslog-tls", host="203.0.113.10", port=6514, server_name="intake.citysoc.example",
                            ca_file="/etc/citysoc/ca.pem", certificate_file="/etc/citysoc/c.pem",
                            key_file="/etc/citysoc/k.pem")
    assert config.rsyslog is not None and config.syslog_ng is not None
    for needed in ('StreamDriver="gtls"', 'StreamDriverPermittedPeers="intake.citysoc.example"',
                   'streamDriver.CAFile="/etc/citysoc/ca.pem"', 'streamDriver.CertFile="/etc/citysoc/c.pem"',
                   'TCP_Framing="octet-counted"', 'action.resumeRetryCount="-1"'):
        assert needed in config.rsyslog
    for needed in ('transport("tls")', 'ca-file("/etc/citysoc/ca.pem")', 'cert-file("/etc/citysoc/c.pem")',
                   "peer-verify(required-trusted)"):
        assert needed in config.syslog_ng


def test_relp_has_no_syslog_ng_snippet_and_tls_only_with_a_ca() -> None:
    plain = partner_config("syslog-relp", host="h", port=2514)
    assert plain.syslog_ng is None and plain.rsyslog is not None and 'tls="on"' not in plain.rsyslog
    secure = partner_config("syslog-relp", host="h", port=2515, ca_file="/ca.pem")
    assert secure.rsyslog is not None and 'tls.caCert="/ca.pem"' in secure.rsyslog


def test_http_gives_a_curl_line_with_the_token_and_the_parser() -> None:
    config = partner_config("http", host="intake.example", port=8514, token="s3cret", parser="aws.cloudtrail")
    assert config.rsyslog is None and config.curl is not None
    words = shlex.split(config.curl.splitlines()[0])
    assert words[0] == "curl" and "Authorization: Bearer s3cret" in words
    assert words[-1] == "http://intake.example:8514/v1/events?source=aws.cloudtrail"
    https = partner_config("http", host="intake.example", port=8514, ca_file="/etc/citysoc/ca.pem").curl or ""
    assert "--cacert /etc/citysoc/ca.pem" in https and "https://" in https
    assert "# HTTP" in config.text() and "# rsyslog" not in config.text()


def test_unknown_kinds_and_half_a_client_certificate_are_refused_with_the_choices() -> None:
    with pytest.raises(OnboardingError, match=", ".join(KINDS)):
        partner_config("syslog-carrier-pigeon", host="h", port=1)
    with pytest.raises(OnboardingError, match="both"):
        partner_config("syslog-tls", host="h", port=1, certificate_file="/c.pem")


def test_instructions_are_the_text_soc_sources_add_prints() -> None:
    text = instructions("syslog-tls", host="intake.example", port=6514, token=None, ca_file=None,
                        client_certificate=True)
    assert text.startswith("# rsyslog") and "# syslog-ng" in text and PARTNER_CERT in text
    assert 'StreamDriverPermittedPeers="intake.example"' in text
    assert "Bearer t0k" in instructions("http", host="h", port=8514, token="t0k", ca_file=None)
