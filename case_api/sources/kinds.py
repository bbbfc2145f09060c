"""The kinds of source CitySOC can be fed by, and how a source of each kind is recognised.

A kind says how records arrive: through a listener of `soc collect` (syslog over UDP, TCP, TLS or RELP;
HTTP), or from files and pulls (`soc ingest`). Listener kinds have transports, and a sender is attributed
to its source by a credential (HTTP token, TLS client certificate) or by its configured network; file
kinds have neither. The case API keeps this table so that every client (CLI, console, scripts) gets the
same answers; `tests/test_sources_kinds.py` checks it against the collectors' parser registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from case_api.errors import InvalidRequestError

Transport = Literal["udp", "tcp", "tls", "relp", "http"]

#: Parsers records can go to, with the datasets each writes (the collectors' `LogParser.datasets`).
PARSER_DATASETS: dict[str, tuple[str, ...]] = {
    "syslog": ("system.auth", "system.syslog", "sysmon_linux.log", "auditd.log", "cef.log", "leef.log"),
    "aws.cloudtrail": ("aws.cloudtrail",),
    "auditd": ("auditd.log",),
    "azure.activitylogs": ("azure.activitylogs", "azure.signinlogs", "azure.auditlogs"),
    "azure.signinlogs": ("azure.signinlogs", "azure.activitylogs", "azure.auditlogs"),
    "azure.auditlogs": ("azure.auditlogs", "azure.activitylogs", "azure.signinlogs"),
    "o365.audit": ("o365.audit",),
    "gcp.audit": ("gcp.audit",),
    "okta.system": ("okta.system",),
    "github.audit": ("github.audit",),
}
#: Parsers whose records name a cloud account; only their sources carry `cloud_accounts`.
CLOUD_PARSERS = frozenset({"aws.cloudtrail"})


@dataclass(frozen=True)
class SourceKind:
    """How sources of one kind feed CitySOC.

    - `transports`: the listeners they send to (empty: files or pulls, no listener);
    - `parser`: where their records go by default (None: the source must say, as an HTTP push may carry any);
    - `fixed_parser`: the kind is its parser (file kinds);
    - `credential`: what is issued or pinned to recognise a sender (`token`: a bearer token the API issues;
      `certificate`: an optional TLS client-certificate fingerprint);
    - `networks`: `required` (the network is the only way to know a sender), `allowed` (instead of a
      certificate) or `refused`.
    """

    name: str
    transports: frozenset[Transport]
    parser: str | None
    fixed_parser: bool = False
    credential: Literal["token", "certificate"] | None = None
    networks: Literal["required", "allowed", "refused"] = "refused"

    @property
    def listens(self) -> bool:
        return bool(self.transports)


KINDS: dict[str, SourceKind] = {kind.name: kind for kind in (
    SourceKind("syslog-udp", frozenset({"udp"}), "syslog", networks="required"),
    SourceKind("syslog-tcp", frozenset({"tcp"}), "syslog", networks="required"),
    # A sender known by its client certificate (or network) may use TLS syslog or RELP, whichever its
    # rsyslog or syslog-ng speaks: the kind picks the onboarding snippet, not the listener.
    SourceKind("syslog-tls", frozenset({"tls", "relp"}), "syslog", credential="certificate", networks="allowed"),
    SourceKind("syslog-relp", frozenset({"relp", "tls"}), "syslog", credential="certificate", networks="allowed"),
    SourceKind("http", frozenset({"http"}), None, credential="token"),
    SourceKind("syslog", frozenset(), "syslog", fixed_parser=True),
    SourceKind("aws.cloudtrail", frozenset(), "aws.cloudtrail", fixed_parser=True),
    SourceKind("auditd", frozenset(), "auditd", fixed_parser=True),
)}
ALIASES = {"cloudtrail": "aws.cloudtrail", "auditd.log": "auditd", "relp": "syslog-relp"}

#: Kinds members ask for that nothing in CitySOC can feed yet (cloud and identity audit logs).
PLANNED_KINDS = frozenset({"m365", "o365", "o365.audit", "azure", "azure-eventhub", "azure.signinlogs",
                           "azure.activitylogs", "azure.auditlogs", "gcp", "gcp-pubsub", "gcp.audit", "okta",
                           "okta.system", "github", "github.audit", "aws-s3"})


def source_kind(name: str) -> SourceKind:
    """The kind called `name` (or one of its aliases); a kind nothing can feed is refused with advice."""
    kind = KINDS.get(ALIASES.get(name, name))
    if kind is not None:
        return kind
    known = ", ".join(KINDS)
    if name in PLANNED_KINDS:
        raise InvalidRequestError(
            f"nothing can feed a {name!r} source yet: CitySOC has no collector or parser for it, so it would "
            f"never receive an event. Register it once its collector exists; the kinds that can be fed today "
            f"are: {known}")
    raise InvalidRequestError(f"unknown source kind {name!r}; use one of: {known}")


def resolve_parser(kind: SourceKind, parser: str | None) -> str:
    """The parser a source's records go to: the one asked for if the kind allows it, else the kind's own."""
    if parser is None:
        if kind.parser is None:
            raise InvalidRequestError(f"a {kind.name} source may carry records of any format: say which parser "
                                      f"they go to (parser: one of {', '.join(PARSER_DATASETS)})")
        return kind.parser
    parser = ALIASES.get(parser, parser)
    if parser not in PARSER_DATASETS:
        raise InvalidRequestError(f"unknown parser {parser!r}; use one of: {', '.join(PARSER_DATASETS)}")
    if kind.fixed_parser and parser != kind.parser:
        raise InvalidRequestError(f"a {kind.name} source is parsed as {kind.parser}; leave the parser out")
    return parser
