"""Campaign rules: which indicators, seen at how many member organisations within what window, form a campaign.

The one place campaigns are configured. Rules are YAML files (`*.yaml`, so Sigma loaders that read
`*.yml` skip them), by default `detection_rules/campaigns/`; `SOC_CAMPAIGN_RULES` names other
folders or files. A rule reads:

```yaml
title: Same source address at several member organisations
id: 9c1d0f6e-...            # uuid: campaigns are keyed by it
description: ...
indicators: [ip, user_agent, domain]   # indicator kinds (`campaigns/indicators.py`), `rule`: the same rule firing
min_tenants: 2              # distinct member organisations, at least 2
min_tenants_by_kind:        # optional: more organisations for a noisier kind
    user_agent: 3
ignore:                     # optional, per kind: values that are never a campaign
    ip: [10.0.0.0/8]        #   `ip`: addresses or networks (CIDR)
    user_agent: ["Mozilla/5.0 (*"]   # other kinds: shell-style patterns, case-insensitive, on the normalised value
window: 24h                 # how far from an alert the other organisations' sightings may lie
min_level: low              # optional: only alerts of this Sigma level or worse count
```
"""

from __future__ import annotations

import fnmatch
import ipaddress
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from case_api.campaigns.indicators import INDICATOR_KINDS
from case_api.errors import CaseApiError
from citysoc.schedule import parse_duration

DEFAULT_CAMPAIGN_RULES = Path(__file__).resolve().parents[2] / "detection_rules" / "campaigns"
SIGMA_LEVELS = ("informational", "low", "medium", "high", "critical")


class CampaignRuleError(CaseApiError):
    """A campaign rule file that cannot be used; the message names the file and the problem."""


class CampaignRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str = Field(min_length=1, max_length=200)
    description: str = ""
    indicators: tuple[str, ...] = Field(min_length=1)
    min_tenants: int = Field(default=2, ge=2)
    min_tenants_by_kind: Mapping[str, Annotated[int, Field(ge=2)]] = Field(default_factory=dict)
    ignore: Mapping[str, tuple[str, ...]] = Field(default_factory=dict)
    window: timedelta
    min_level: str = "informational"

    @field_validator("id")
    @classmethod
    def _uuid(cls, value: str) -> str:
        return str(uuid.UUID(value))

    @field_validator("indicators")
    @classmethod
    def _kinds(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if name not in INDICATOR_KINDS:
                field_of = [kind.name for kind in INDICATOR_KINDS.values() if name in kind.fields]
                advice = (f"{name!r} is an entity field; name its kind: {field_of[0]}" if field_of
                          else f"{name!r} is not an indicator kind")
                raise ValueError(f"{advice} (kinds: {', '.join(INDICATOR_KINDS)})")
        return value

    @model_validator(mode="after")
    def _per_kind(self) -> CampaignRule:
        for option in ("min_tenants_by_kind", "ignore"):
            stray = sorted(set(getattr(self, option)) - set(self.indicators))
            if stray:
                raise ValueError(f"{option} names {', '.join(stray)}, not among this rule's indicators")
        for pattern in self.ignore.get("ip", ()):
            try:
                ipaddress.ip_network(pattern, strict=False)
            except ValueError as exc:
                raise ValueError(f"ignore.ip: {pattern!r} is not an address or network (CIDR)") from exc
        return self

    @field_validator("window", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("min_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value not in SIGMA_LEVELS:
            raise ValueError(f"{value!r} is not a Sigma level; use one of {', '.join(SIGMA_LEVELS)}")
        return value

    @property
    def counted_levels(self) -> tuple[str, ...]:
        return SIGMA_LEVELS[SIGMA_LEVELS.index(self.min_level):]

    def min_tenants_for(self, kind: str) -> int:
        return self.min_tenants_by_kind.get(kind, self.min_tenants)

    def ignores(self, kind: str, value: str) -> bool:
        """Whether the normalised ``value`` of ``kind`` is configured as never a campaign (``ignore``)."""
        patterns = self.ignore.get(kind, ())
        if kind == "ip":
            address = ipaddress.ip_address(value)
            return any(address in ipaddress.ip_network(pattern, strict=False) for pattern in patterns)
        return any(fnmatch.fnmatchcase(value.lower(), pattern.lower()) for pattern in patterns)


def load_campaign_rules(paths: Iterable[Path]) -> tuple[CampaignRule, ...]:
    """Every campaign rule under ``paths`` (folders are searched for ``*.yaml``), ids unique."""
    rules: list[CampaignRule] = []
    seen: dict[str, Path] = {}
    for path in _files(paths):
        for rule in _read(path):
            if rule.id in seen:
                raise CampaignRuleError(f"{path}: campaign rule id {rule.id} is also used in {seen[rule.id]}")
            seen[rule.id] = path
            rules.append(rule)
    return tuple(rules)


def _files(paths: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(path.rglob("*.yaml")))
        elif path.is_file():
            files.append(path)
        else:
            raise CampaignRuleError(f"{path}: no such campaign rule file or folder (check SOC_CAMPAIGN_RULES)")
    return files


def _read(path: Path) -> Sequence[CampaignRule]:
    try:
        documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise CampaignRuleError(f"{path}: not readable YAML: {exc}") from exc
    rules: list[CampaignRule] = []
    for number, document in enumerate(documents, start=1):
        try:
            rules.append(CampaignRule.model_validate(document))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'rule'}: {error['msg']}" for error in exc.errors()
            )
            raise CampaignRuleError(f"{path} (document {number}): {problems}") from exc
    return rules
