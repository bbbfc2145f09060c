"""The kinds of source CitySOC can be fed by, and how a source of each kind is recognised.

A kind says how records arrive: through a listener of `soc collect` (syslog over UDP, TCP, TLS or RELP;
HTTP), from files (`soc ingest`), or pulled from a provider's API by `soc pull` (`PULL_KINDS`: the
settings each takes, which of them name credentials, and what the member grants on their side). Listener
kinds have transports, and a sender is attributed to its source by a credential (HTTP token, TLS client
certificate) or by its configured network; file and pulled kinds have neither. The case API keeps this
table so that every client (CLI, console, scripts) gets the same answers; `tests/test_sources_kinds.py`
checks it against the collectors' parser registry and pullers.
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
    "azure.activitylogs": ("azure.activitylogs", "azure.signinlogs", "azure.auditlogs", "azure.identity_protection"),
    "azure.signinlogs": ("azure.signinlogs", "azure.activitylogs", "azure.auditlogs", "azure.identity_protection"),
    "azure.auditlogs": ("azure.auditlogs", "azure.activitylogs", "azure.signinlogs", "azure.identity_protection"),
    "azure.identity_protection": ("azure.identity_protection", "azure.activitylogs", "azure.signinlogs",
                                  "azure.auditlogs"),
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
    pulled: bool = False

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
    # pulled by `soc pull` from the provider's API; the parser is the dataset the provider sends, or another
    # when the member routes something else there (GitHub audit streaming to S3: --parser github.audit)
    SourceKind("aws-s3", frozenset(), "aws.cloudtrail", pulled=True),
    SourceKind("azure-eventhub", frozenset(), "azure.activitylogs", pulled=True),
    SourceKind("m365", frozenset(), "o365.audit", fixed_parser=True, pulled=True),
    SourceKind("gcp-pubsub", frozenset(), "gcp.audit", pulled=True),
    SourceKind("okta", frozenset(), "okta.system", fixed_parser=True, pulled=True),
    SourceKind("github", frozenset(), "github.audit", fixed_parser=True, pulled=True),
)}
ALIASES = {"cloudtrail": "aws.cloudtrail", "auditd.log": "auditd", "relp": "syslog-relp"}

ALIASES.update({"o365": "m365", "azure": "azure-eventhub", "gcp": "gcp-pubsub", "s3": "aws-s3"})

#: Datasets are what a file ingest or a pull names, not a kind: the kind that feeds each.
DATASET_KINDS = {"o365.audit": "m365", "azure.signinlogs": "azure-eventhub", "azure.activitylogs": "azure-eventhub",
                 "azure.auditlogs": "azure-eventhub", "gcp.audit": "gcp-pubsub", "okta.system": "okta",
                 "github.audit": "github"}


@dataclass(frozen=True)
class PullKind:
    """What a pulled kind takes (`--setting KEY=VALUE`): `required` and `optional` settings, the `secrets`
    among them (given as `env:NAME` or `file:/path`, never the secret itself), the `endpoints` that only a
    city role may point elsewhere than the provider, and what the member must grant on their side."""

    required: tuple[str, ...]
    optional: tuple[str, ...]
    secrets: tuple[str, ...]
    grants: str
    endpoints: tuple[str, ...] = ()
    lists: tuple[str, ...] = ()  # settings that hold several values (comma-separated on the command line)


PULL_KINDS: dict[str, PullKind] = {
    "aws-s3": PullKind(
        required=("bucket",),
        optional=("region", "prefix", "queue_url", "visibility_timeout", "access_key_id", "secret_access_key",
                  "session_token", "endpoint_url", "sqs_endpoint_url"),
        secrets=("access_key_id", "secret_access_key", "session_token"), endpoints=("endpoint_url", "sqs_endpoint_url"),
        grants="In AWS, give the principal CitySOC uses (an IAM user or role) only: s3:ListBucket on the bucket "
               "(scoped to the trail's prefix), s3:GetObject on its objects, kms:Decrypt on the trail's KMS key if "
               "it is encrypted with one, and, with SQS notifications (recommended: queue_url), "
               "sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes on the queue only."),
    "azure-eventhub": PullKind(
        required=("connection_string", "eventhub", "consumer_group"), optional=("idle_seconds", "connect_seconds"),
        secrets=("connection_string",),
        grants="In Azure, route the diagnostic settings (Activity log; Entra ID SignInLogs and AuditLogs) to an "
               "event hub; create a consumer group for CitySOC and a shared access policy on that event hub with "
               "the Listen right only (or give CitySOC's app 'Azure Event Hubs Data Receiver' on it); "
               "connection_string is a reference to that policy's connection string."),
    "m365": PullKind(
        required=("tenant_id", "client_id", "client_secret"),
        optional=("content_types", "api_url", "token_url"), secrets=("client_secret",),
        endpoints=("api_url", "token_url"), lists=("content_types",),
        grants="In Entra ID, register an app for CitySOC with the Office 365 Management APIs application "
               "permission ActivityFeed.Read (and ActivityFeed.ReadDlp for DLP.All), granted admin consent; "
               "unified audit logging must be on. client_secret is a reference to the app's secret."),
    "gcp-pubsub": PullKind(
        required=("subscription",), optional=("credentials_file",), secrets=("credentials_file",),
        grants="In Google Cloud, create a log sink (audit logs: logName:\"cloudaudit.googleapis.com\") to a "
               "Pub/Sub topic and a pull subscription on it; give CitySOC's service account "
               "roles/pubsub.subscriber on that subscription only. credentials_file is file:/path to its key."),
    "okta": PullKind(
        required=("domain", "token"), optional=("since", "auth_scheme"), secrets=("token",),
        grants="In Okta, create the API token as a Read-Only Administrator (or a service app with the "
               "okta.logs.read scope, auth_scheme=Bearer). For event hooks instead, register an http source "
               "and give Okta its URL with the Authorization header 'Bearer <token>'."),
    "github": PullKind(
        required=("token",), optional=("org", "enterprise", "since", "include", "api_url"), secrets=("token",),
        endpoints=("api_url",),
        grants="In GitHub, a token of an organisation owner with the read:audit_log scope (or a GitHub App "
               "with the organisation 'Administration: read' permission for the audit log); for an enterprise, "
               "an enterprise owner's token with read:audit_log. Audit log streaming to S3 or Event Hubs "
               "is pulled by an aws-s3 or azure-eventhub source with parser github.audit."),
}


def source_kind(name: str) -> SourceKind:
    """The kind called `name` (or one of its aliases); a kind nothing can feed is refused with advice."""
    kind = KINDS.get(ALIASES.get(name, name))
    if kind is not None:
        return kind
    known = ", ".join(KINDS)
    if name in DATASET_KINDS:
        raise InvalidRequestError(f"{name!r} is a dataset, not a kind: pull it with a {DATASET_KINDS[name]!r} source, "
                                  f"or ingest files with `soc ingest --source {name}`")
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
