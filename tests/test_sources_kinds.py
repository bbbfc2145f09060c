"""The case API's table of source kinds agrees with the collectors it describes: the parsers and their datasets,
the attribution transports, the intake's ports and the onboarding instructions."""

from __future__ import annotations

from typing import get_args

from case_api.sources import kinds
from citysoc.onboarding import instructions
from citysoc.settings import Settings
from collectors import attribution
from collectors.base import get_parser, parser_names


def test_every_parser_the_collectors_register_is_known_with_its_datasets() -> None:
    # the product's parsers (test modules register small parsers of their own)
    product = [get_parser(name) for name in parser_names() if get_parser(name).__module__.startswith("collectors.")]
    canonical = {parser.name for parser in product}
    assert set(kinds.PARSER_DATASETS) == canonical
    for name in canonical:
        assert kinds.PARSER_DATASETS[name] == get_parser(name).datasets, name
    for alias, target in kinds.ALIASES.items():
        assert target in kinds.KINDS, alias


def test_transports_are_the_ones_attribution_resolves() -> None:
    assert set(get_args(kinds.Transport)) == set(get_args(attribution.Transport))
    listened = {transport for kind in kinds.KINDS.values() for transport in kind.transports}
    assert listened == set(get_args(attribution.Transport))


def test_every_listener_kind_has_a_port_and_onboarding_instructions() -> None:
    settings = Settings(collect_host="intake.example.org")
    for kind in kinds.KINDS.values():
        port = settings.collect_port(kind.name)
        assert (port is not None) == kind.listens, kind.name
        if port is not None:
            guide = instructions(kind.name, host=settings.collect_host, port=port, token="t", ca_file=None)
            assert "intake.example.org" in guide and str(port) in guide


def test_every_pulled_kind_has_a_puller_with_the_same_settings() -> None:
    from collectors.pull import get_puller, puller_kinds

    pulled = {kind.name for kind in kinds.KINDS.values() if kind.pulled}
    assert pulled == set(kinds.PULL_KINDS) == set(puller_kinds())
    for name, spec in kinds.PULL_KINDS.items():
        puller = get_puller(name)
        assert set(puller.required_settings) <= set(spec.required), name
        assert set(puller.secret_settings) == set(spec.secrets), name
        assert kinds.KINDS[name].parser in kinds.PARSER_DATASETS, name
    # what the member grants names the least privilege each provider has for reading its audit log
    least = {"aws-s3": ("s3:GetObject", "s3:ListBucket", "sqs:ReceiveMessage", "sqs:DeleteMessage"),
             "azure-eventhub": ("Listen right only", "consumer group"), "m365": ("ActivityFeed.Read",),
             "gcp-pubsub": ("roles/pubsub.subscriber",), "okta": ("Read-Only Administrator", "okta.logs.read"),
             "github": ("read:audit_log",)}
    for name, phrases in least.items():
        assert all(phrase in kinds.PULL_KINDS[name].grants for phrase in phrases), name
