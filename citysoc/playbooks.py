"""OASIS CACAO v2.0 playbooks: loading, validation against the official schemas, and trigger matching.

A playbook says which alerts it answers through a CACAO extension (`citysoc-triggers`, defined in
each playbook's `extension_definitions`) whose properties are `rule_ids` (Sigma rule ids) and `tags`
(ATT&CK tags). The official JSON schemas are not shipped with CitySOC (they are the OASIS TC's): the
validator is given their folder (the `cacao-json-schemas` repository's `schemas/`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator
from referencing import Registry, Resource

from citysoc.errors import CitySocError

PLAYBOOKS_DIR = Path(__file__).resolve().parent.parent / "playbooks"
TRIGGERS_EXTENSION_NAME = "citysoc-triggers"


class PlaybookError(CitySocError):
    """A playbook file is not valid CACAO 2.0; the message names the file and the JSON path."""


@dataclass(frozen=True)
class Playbook:
    path: Path
    document: dict[str, Any]

    @property
    def id(self) -> str:
        return str(self.document["id"])

    @property
    def name(self) -> str:
        return str(self.document["name"])

    def triggers(self) -> tuple[frozenset[str], frozenset[str]]:
        """(rule ids, tags) of the `citysoc-triggers` extension; empty when the playbook has none."""
        definitions = self.document.get("extension_definitions", {})
        for extension_id, definition in definitions.items():
            if definition.get("name") == TRIGGERS_EXTENSION_NAME:
                values = self.document.get("playbook_extensions", {}).get(extension_id, {})
                return frozenset(values.get("rule_ids", ())), frozenset(values.get("tags", ()))
        return frozenset(), frozenset()

    def matches(self, *, rule_ids: Iterable[str], tags: Iterable[str]) -> bool:
        wanted_rules, wanted_tags = self.triggers()
        return bool(wanted_rules & set(rule_ids) or wanted_tags & set(tags))


class CacaoValidator:
    """Validates documents against the official CACAO v2.0 JSON schemas found in `schema_dir`."""

    def __init__(self, schema_dir: Path) -> None:
        entry = schema_dir / "playbook.json"
        if not entry.is_file():
            raise PlaybookError(f"no CACAO schemas at {schema_dir}: expected playbook.json there")
        resources = []
        for path in schema_dir.rglob("*.json"):
            contents = json.loads(path.read_text())
            if "$id" in contents:
                resources.append((contents["$id"], Resource.from_contents(contents)))
        self._validator = Draft7Validator(json.loads(entry.read_text()), registry=Registry().with_resources(resources))

    def errors(self, document: Any) -> list[str]:
        """Every violation as `<json path>: <message>`, in a stable order."""
        found = sorted(self._validator.iter_errors(document), key=lambda error: list(error.absolute_path))
        return [f"{error.json_path}: {error.message}" for error in found]


def load_playbooks(directory: Path = PLAYBOOKS_DIR) -> Iterator[Playbook]:
    for path in sorted(directory.glob("*.json")):
        try:
            document = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise PlaybookError(f"{path}:{error.lineno}: not JSON ({error.msg})") from None
        yield Playbook(path, document)


def playbooks_for(playbooks: Iterable[Playbook], *, rule_ids: Iterable[str], tags: Iterable[str]) -> list[Playbook]:
    """The playbooks whose triggers match any of the rule ids or tags (e.g. of a case's alerts)."""
    rule_ids, tags = set(rule_ids), set(tags)
    return [playbook for playbook in playbooks if playbook.matches(rule_ids=rule_ids, tags=tags)]
