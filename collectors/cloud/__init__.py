"""Cloud and identity audit-log parsers, one per dataset, each registered as a `soc ingest --source`:
`azure.activitylogs`, `azure.signinlogs`, `azure.auditlogs`, `azure.identity_protection`, `o365.audit`,
`gcp.audit`, `okta.system`, `github.audit` (`collectors/README.md` says which shapes each takes and how
its fields map).

For pulls that hold decoded records rather than files:
- `normalise_native(dataset, record, tenant=...)`: one native record (a dict, no envelope) -> a nested ECS
  document, or `UnparsableRecordError` with the reason;
- `unwrap_native(dataset, document)`: the records an envelope holds (Event Hub body, Okta event hook,
  Pub/Sub push or pull message), or `[document]` when it is a record itself;
- to store a batch: `get_parser(dataset)().parse_records([RawRecord(orjson.dumps(doc), origin, received)],
  tenant=..., source=dataset)` gives the event tables and the dead letters, envelopes unwrapped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collectors.base import ParserOptions, get_parser
from collectors.cloud.azure import (
    AzureActivityLogsParser,
    AzureAuditLogsParser,
    AzureIdentityProtectionParser,
    AzureSignInLogsParser,
)
from collectors.cloud.base import CloudAuditParser, native_event
from collectors.cloud.gcp import GcpAuditParser
from collectors.cloud.github import GitHubAuditParser
from collectors.cloud.o365 import O365AuditParser
from collectors.cloud.okta import OktaSystemLogParser

CLOUD_PARSERS: dict[str, type[CloudAuditParser]] = {parser.name: parser for parser in (
    AzureActivityLogsParser, AzureSignInLogsParser, AzureAuditLogsParser, AzureIdentityProtectionParser,
    O365AuditParser, GcpAuditParser, OktaSystemLogParser, GitHubAuditParser)}


def cloud_parser(dataset: str, options: ParserOptions | None = None) -> CloudAuditParser:
    """The parser of a cloud dataset (or one of its aliases: `okta`, `m365`, `gcp`, `github`, ...)."""
    parser = get_parser(dataset)(options)
    if not isinstance(parser, CloudAuditParser):
        raise ValueError(f"{dataset!r} is not a cloud audit dataset; use one of: {', '.join(CLOUD_PARSERS)}")
    return parser


def normalise_native(dataset: str, record: Mapping[str, Any], *, tenant: str,
                     options: ParserOptions | None = None) -> dict[str, Any]:
    """One decoded native record -> nested ECS document; raises `UnparsableRecordError` with the reason."""
    return native_event(cloud_parser(dataset, options), record, tenant=tenant)


def unwrap_native(dataset: str, document: Any) -> list[Any]:
    """The records `document` holds (its envelope opened), or `[document]` when it is one record."""
    items = cloud_parser(dataset).unwrap(document)
    return [document] if items is None else items


__all__ = ["CLOUD_PARSERS", "CloudAuditParser", "cloud_parser", "normalise_native", "unwrap_native"]
