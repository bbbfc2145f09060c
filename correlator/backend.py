"""The Databricks Spark SQL backend, adapted to our event schema and to open-source Spark.

Differences from `DatabricksBackend`:
- field names resolve against `citysoc.schema`: struct fields become back-quoted struct paths, fields
  below a JSON string field become `get_json_object(<field>, '$.<path>')`, and any other name raises
  `SigmaFeatureNotSupportedByBackendError("field X has no source in <dataset>")` at conversion time;
- `|cidr` becomes an IPv4 range check from Spark built-ins (`ip_cidr_contains` and `try_ip_as_binary`
  exist only on Databricks); IPv6 networks are refused with a reason.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from ipaddress import IPv4Network
from typing import Any, ClassVar

from sigma.backends.databricks import DatabricksBackend
from sigma.conditions import ConditionFieldEqualsValueExpression
from sigma.conversion.state import ConversionState
from sigma.exceptions import SigmaFeatureNotSupportedByBackendError
from sigma.types import SigmaCIDRExpression

from citysoc.schema import FIELDS, JSON_FIELDS

SCALAR_FIELDS: frozenset[str] = frozenset(name for name, kind in FIELDS.items() if kind != "json")
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_REGEX = rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$"


def quote_path(name: str) -> str:
    """`event.action` -> `` `event`.`action` `` (every part quoted: `@timestamp`, keywords, ...)."""
    parts = [name] if name == "@timestamp" else name.split(".")
    return ".".join("`" + part.replace("`", "``") + "`" for part in parts)


def json_path(keys: Sequence[str]) -> str:
    """A JSONPath for get_json_object; keys that are not identifiers use bracket notation."""
    return "$" + "".join(f".{key}" if _SIMPLE_KEY.match(key) else f"['{key}']" for key in keys)


def sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_field(name: str) -> str | None:
    """Spark SQL for an ECS field name, or None when the schema has no source for it."""
    if name in SCALAR_FIELDS or name in JSON_FIELDS:
        return quote_path(name)
    for json_field in JSON_FIELDS:
        if name.startswith(json_field + "."):
            keys = name[len(json_field) + 1:].split(".")
            return f"get_json_object({quote_path(json_field)}, {sql_string(json_path(keys))})"
    return None


def ipv4_number(column: str) -> str:
    """An IPv4 string column as a bigint (null when it is not a dotted quad)."""
    octets = [f"cast(split({column}, '\\\\.')[{i}] as bigint)" for i in range(4)]
    number = f"(({octets[0]} * 16777216) + ({octets[1]} * 65536) + ({octets[2]} * 256) + {octets[3]})"
    return f"CASE WHEN {column} rlike {sql_string(IPV4_REGEX)} THEN {number} END"


def ipv4_cidr_expression(column: str, network: IPv4Network) -> str:
    low, high = int(network.network_address), int(network.broadcast_address)
    # coalesce: a non-IPv4 value must be "not in range", also under NOT (null would drop the row there)
    return f"coalesce(({ipv4_number(column)}) BETWEEN {low} AND {high}, false)"


class CitySocSparkBackend(DatabricksBackend):
    """Spark SQL for one log source route: knows its datasets (for messages) and keyword column."""

    name: ClassVar[str] = "citysoc-spark"

    def __init__(self, processing_pipeline: Any = None, *, datasets: Sequence[str] = (),
                 raw_log_field: str = "message", **kwargs: Any) -> None:
        super().__init__(processing_pipeline, raw_log_field=raw_log_field, **kwargs)
        self.datasets = tuple(datasets)

    def escape_and_quote_field(self, field_name: str) -> str:
        resolved = resolve_field(field_name)
        if resolved is None:
            where = ", ".join(self.datasets) or "any dataset"
            raise SigmaFeatureNotSupportedByBackendError(f"field {field_name} has no source in {where}")
        return resolved

    def convert_condition_field_eq_val_cidr(self, cond: ConditionFieldEqualsValueExpression,
                                            state: ConversionState) -> str:
        cidr = cond.value
        if not isinstance(cidr, SigmaCIDRExpression):
            raise TypeError(f"expected a CIDR expression, got {type(cidr).__name__}")
        if not isinstance(cidr.network, IPv4Network):
            raise SigmaFeatureNotSupportedByBackendError(f"IPv6 CIDR {cidr.cidr} is not supported yet")
        return ipv4_cidr_expression(self.escape_and_quote_field(cond.field), cidr.network)
