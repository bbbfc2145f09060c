"""Collectors: parse log sources, attribute the tenant, normalise to ECS, dead-letter what cannot be parsed.

Importing the package registers the in-tree parsers (`aws.cloudtrail` alias `cloudtrail`, `syslog`,
`auditd` alias `auditd.log`, and the cloud audit datasets of
`collectors.cloud`: `okta.system`, `o365.audit`, `gcp.audit`, `github.audit`, `azure.*`).
"""

from collectors.auditd import AuditdParser
from collectors.base import LogParser, Normalised, ParsedEvent, ParserOptions, get_parser, parser_names, register_parser
from collectors.cloud import CLOUD_PARSERS
from collectors.cloudtrail import CloudTrailParser
from collectors.errors import CollectorError, InputPathError, UnknownParserError, UnparsableRecordError
from collectors.records import ParsedBatch, RawRecord, ReadProblem
from collectors.syslog import SyslogParser

__all__ = [
    "CLOUD_PARSERS",
    "AuditdParser",
    "CloudTrailParser",
    "CollectorError",
    "InputPathError",
    "LogParser",
    "Normalised",
    "ParsedBatch",
    "ParsedEvent",
    "ParserOptions",
    "RawRecord",
    "ReadProblem",
    "SyslogParser",
    "UnknownParserError",
    "UnparsableRecordError",
    "get_parser",
    "parser_names",
    "register_parser",
]
