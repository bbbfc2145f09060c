"""Collectors: parse log sources, attribute the tenant, normalise to ECS, dead-letter what cannot be parsed.

Importing the package registers the in-tree parsers (`aws.cloudtrail` alias `cloudtrail`, `syslog`,
`auditd` alias `auditd.log`).
"""

from collectors.auditd import AuditdParser
from collectors.base import LogParser, Normalised, ParsedEvent, ParserOptions, get_parser, parser_names, register_parser
from collectors.cloudtrail import CloudTrailParser
from collectors.errors import CollectorError, InputPathError, UnknownParserError, UnparsableRecordError
from collectors.records import ParsedBatch, RawRecord, ReadProblem
from collectors.syslog import SyslogParser

__all__ = [
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
