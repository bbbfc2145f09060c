"""Where the registry comes from: the access file beside the case API's sources, reloaded while running."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.attribution import Refused, SourceRegistry, token_digest
from collectors.intake import ReloadingRegistry
from collectors.listeners.access import AccessFileError, access_from, read_access_file

SOURCES = [{"id": 7, "tenant_id": "riverside-council", "kind": "syslog", "name": "edge syslog"},
           {"id": 8, "tenant_id": "northgate-hospital", "kind": "http", "name": "json push"}]


def test_entries_become_access_for_registered_sources_only() -> None:
    entries = [
        {"tenant": "riverside-council", "source": "edge syslog", "transports": ["udp", "tcp"],
         "networks": ["192.0.2.0/24"]},
        {"tenant": "northgate-hospital", "source": "json push", "transports": ["http"],
         "token_sha256": token_digest("t0k3n").upper(), "parser": "cloudtrail", "cloud_accounts": [111122223333]},
        {"tenant": "riverside-council", "source": "not registered", "transports": ["udp"], "networks": ["10.0.0.0/8"]},
    ]
    access = access_from(entries, SOURCES)
    assert [(a.source.id, a.source.tenant, a.source.parser) for a in access] == [
        (7, "riverside-council", "syslog"), (8, "northgate-hospital", "aws.cloudtrail")]
    assert access[1].source.cloud_accounts == ("111122223333",)
    registry = SourceRegistry.of(access)
    assert registry.resolve(peer="192.0.2.9", transport="udp", credential=None).id == 7
    with pytest.raises(Refused):  # the unregistered source's network was left out
        registry.resolve(peer="10.1.2.3", transport="udp", credential=None)


def test_a_source_without_a_parser_of_its_own_keeps_none() -> None:
    entry = {"tenant": "northgate-hospital", "source": "json push", "transports": ["http"], "token_sha256": "ab"}
    assert access_from([entry], SOURCES)[0].source.parser == ""


@pytest.mark.parametrize(("entry", "message"), [
    ({"transports": ["carrier-pigeon"]}, "transports must be some of"),
    ({"transports": ["udp"], "networks": ["192.0.2.0/33"]}, "192.0.2.0/33"),
    ({"transports": ["udp"], "parser": "no-such-parser"}, "unknown source kind"),
])
def test_a_bad_entry_says_which_and_why(entry: dict[str, object], message: str) -> None:
    with pytest.raises(AccessFileError, match=message) as error:
        access_from([{"tenant": "riverside-council", "source": "edge syslog", **entry}], SOURCES, where="a.json")
    assert error.value.where == "a.json entry 1"


def test_the_file_must_be_a_json_list_and_may_be_absent(tmp_path: Path) -> None:
    assert read_access_file(tmp_path / "absent.json") == []
    (tmp_path / "bad.json").write_text('{"tenant": "x"}')
    with pytest.raises(AccessFileError, match="list of objects"):
        read_access_file(tmp_path / "bad.json")


def test_a_failed_reload_keeps_the_registry_that_worked() -> None:
    loads: list[SourceRegistry | Exception] = [SourceRegistry.of([]), RuntimeError("case API down"),
                                               SourceRegistry.of(access_from(
                                                   [{"tenant": "riverside-council", "source": "edge syslog",
                                                     "transports": ["udp"], "networks": ["192.0.2.0/24"]}],
                                                   SOURCES))]

    def load() -> SourceRegistry:
        outcome = loads.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    holder = ReloadingRegistry(load, every=3600)
    first = holder.current()
    assert holder.reload() is False and holder.current() is first
    assert holder.reload() is True and holder.reloads == 1
    assert holder.current().resolve(peer="192.0.2.1", transport="udp", credential=None).id == 7
