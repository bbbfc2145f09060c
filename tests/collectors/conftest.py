"""Fixtures shared by the collectors' tests: an HTTP client on a running intake's HTTP listener (each module's own
`intake` fixture says which intake), and an Event Hub source whose connection string points at a closed local port."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from collectors.pull import PullSource
from tests.collectors.intake_helpers import DEADLINE, Running
from tests.collectors.pull_helpers import UnreachableEventHub


@pytest.fixture
def http(intake: Running) -> Iterator[httpx.Client]:
    host, port = intake.address("http")
    with httpx.Client(base_url=f"http://{host}:{port}", timeout=DEADLINE) as client:
        yield client


@pytest.fixture
def unreachable_eventhub() -> UnreachableEventHub:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = PullSource(3, "council", "hub", "azure-eventhub", "azure.signinlogs", {
        "connection_string": "env:HUB", "eventhub": "insights-logs", "consumer_group": "$Default",
        "idle_seconds": "1"})
    connection = (f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=listen;SharedAccessKey=k;"
                  "UseDevelopmentEmulator=true")
    return UnreachableEventHub(source, connection)
