"""`soc contacts` and `soc notifications` on the embedded default: a member's contacts added by the admin, a new
high case delivered by `soc notifications send` to a real SMTP server and a verifying webhook receiver."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citysoc.settings import Settings
from citysoc.wiring import case_client
from tests.case_api.conftest import build_alert
from tests.case_api.notify_peers import Mailbox, WebhookReceiver, smtp_server, webhook_receiver
from tests.cli_runner import json_lines, run_soc

NG = "northgate-hospital"


@pytest.fixture
def peers() -> Iterator[tuple[Mailbox, int, WebhookReceiver]]:
    with smtp_server() as (mailbox, port), webhook_receiver() as receiver:
        yield mailbox, port, receiver


def soc(home: Path, smtp_port: int, *args: str) -> tuple[int, str, str]:
    env = {"SOC_SMTP_HOST": "127.0.0.1", "SOC_SMTP_PORT": str(smtp_port),
           "SOC_NOTIFY_SOC_EMAILS": '["soc@city.example"]'}
    return run_soc(home, *args, env=env)


def test_contacts_and_delivery_from_the_cli(tmp_path: Path, peers: tuple[Mailbox, int, WebhookReceiver],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    mailbox, port, receiver = peers
    home = tmp_path / "soc"
    assert soc(home, port, "tenants", "add", NG)[0] == 0
    assert soc(home, port, "contacts", "add", NG, "--email", "it@northgate.example")[0] == 0
    code, out, _ = soc(home, port, "contacts", "add", NG, "--webhook", f"{receiver.url}/ng", "--json")
    [hook] = json_lines(out)
    assert code == 0 and hook["secret"].startswith("whsec_")
    receiver.secrets["/ng"] = hook["secret"]
    code, out, _ = soc(home, port, "contacts", "list", NG)
    assert code == 0 and "it@northgate.example" in out and hook["secret"] not in out
    code, _, err = soc(home, port, "contacts", "add", NG, "--email", "x@y.example", "--webhook", "http://a.example")
    assert code == 2 and "exactly one" in err
    code, _, err = soc(home, port, "contacts", "add", NG, "--email", "nope")
    assert code == 1 and "not an email address" in err

    monkeypatch.setenv("SOC_HOME", str(home))
    monkeypatch.setenv("SOC_NOTIFY_SOC_EMAILS", '["soc@city.example"]')  # the posting process's SOC contacts
    with case_client(Settings(home=home), role="service") as client:
        [case_id] = client.post_alerts([build_alert(NG, level="critical")])["cases"]
    code, out, _ = soc(home, port, "notifications", "send")
    assert code == 0 and "3 sent, 0 to retry, 0 failed" in out
    assert sorted(m["X-Envelope-To"] for m in mailbox.messages) == ["it@northgate.example", "soc@city.example"]
    assert [d.payload["data"]["case"]["id"] for d in receiver.verified] == [case_id]
    rows = json_lines(soc(home, port, "notifications", "list", "--json")[1])
    assert len(rows) == 3 and {r["status"] for r in rows} == {"sent"}
    assert soc(home, port, "notifications", "send")[1].startswith("0 sent")
    assert soc(home, port, "contacts", "remove", NG, str(hook["id"]))[0] == 0
    assert len(json_lines(soc(home, port, "contacts", "list", NG, "--json")[1])) == 1
