"""`soc run`: the live SOC as one supervised command (a real process: syslog in over TCP, a case out of the API,
SIGTERM stops every part in order), and the supervisor's restart policy on small real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
import structlog
from typer.testing import CliRunner

from citysoc.cli import app
from citysoc.logging import configure_logging
from citysoc.schedule import load_checkpoint
from citysoc.supervisor import Part, PartFailedError, Supervisor
from tests.process_output import Output

SOC = Path(sys.executable).parent / "soc"


def send_syslog(port: int, user: str) -> None:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    line = f"<38>1 {stamp} web-01 sshd 4242 - - Accepted password for {user} from 192.0.2.10 port 40022 ssh2\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sender:
        sender.sendall(line.encode())


def wait_for_alerts(api: str, key: str, count: int, timeout: float = 240) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alerts = httpx.get(f"{api}/alerts", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
        if len(alerts) >= count:
            return list(alerts)
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} alerts in the case API after {timeout}s")


@pytest.mark.slow
def test_soc_run_turns_a_syslog_line_into_a_case_and_stops_in_order(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    if not SOC.exists():
        pytest.skip(f"the soc entry point is not installed at {SOC} (run `make setup`)")
    home = tmp_path / "soc"
    monkeypatch.setenv("SOC_HOME", str(home))
    runner = CliRunner()
    for command in (["tenants", "add", "riverside-council"],
                    ["sources", "add", "--tenant", "riverside-council", "--kind", "syslog-tcp", "--network",
                     "127.0.0.1/32", "web-01"]):
        assert runner.invoke(app, command).exit_code == 0

    live = subprocess.Popen([str(SOC), "run", "--api", "127.0.0.1:0", "--syslog-tcp", "127.0.0.1:0"],
                            env={**os.environ, "SOC_HOME": str(home), "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    output = Output(live)
    try:
        api = output.wait_for(r"case API on (http://127\.0\.0\.1:\d+/api/v1)").group(1)
        port = int(output.wait_for(r"intake syslog-tcp on 127\.0\.0\.1:(\d+)").group(1))
        intake_pid = int(output.wait_for(r"part started\s+part=intake pid=(\d+)").group(1))
        output.wait_for(r"\[detection\] detecting every 1s")
        output.wait_for(r"\[intake\] .*intake ready")
        key = orjson.loads((home / "secrets.json").read_bytes())["soc_analyst"]

        send_syslog(port, "root")
        (alert,) = wait_for_alerts(api, key, 1)
        cases = httpx.get(f"{api}/cases", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()
        assert [(case["tenant_id"], case["group_key"]) for case in cases] == [("riverside-council",
                                                                              "source.ip=192.0.2.10")]
        assert alert["case_id"] == cases[0]["id"] and alert["rule_title"] == "SSH Login As Root Accepted"

        # a part that dies is restarted, and works again
        restarted = output.mark()
        os.kill(intake_pid, signal.SIGKILL)
        output.wait_for(r"part exited; restarting it .*part=intake", since=restarted)
        output.wait_for(r"\[intake\] .*intake ready", since=restarted)
        send_syslog(port, "root")  # the same login again, a second later: a second alert on the same case
        assert len(wait_for_alerts(api, key, 2)) == 2

        live.send_signal(signal.SIGTERM)
        assert live.wait(timeout=300) == 0, output.rest()
    finally:
        if live.poll() is None:
            os.killpg(live.pid, signal.SIGKILL)
    text = output.rest()
    stopped = [found.group(1) for found in re.finditer(r"stopping part\s+part=([\w-]+)", text)]
    assert stopped == ["intake", "pull", "detection", "case-api"], text
    assert load_checkpoint(home / "detect-checkpoint.json") == 2  # both arrivals evaluated and delivered


@pytest.fixture(autouse=True)
def log_to_this_tests_stderr() -> Iterator[None]:
    """The supervisor logs through structlog: to this test's stderr, not one an earlier test closed (and no
    later test inherits this one's)."""
    configure_logging()
    yield
    structlog.reset_defaults()


def python_part(name: str, code: str, **options: float) -> Part:
    return Part(name, [sys.executable, "-c", code], dict(os.environ), **options)  # type: ignore[arg-type]


def test_a_part_that_keeps_dying_stops_the_others_with_its_last_lines() -> None:
    lines: list[str] = []
    steady = python_part("steady", "import time; time.sleep(600)")
    failing = python_part("failing", "print('cannot open the lake: permission denied'); raise SystemExit(3)")
    supervisor = Supervisor([steady, failing], max_restarts=2, restart_window=60, output=lines.append)
    with pytest.raises(PartFailedError, match=r"failing exited \(code 3\) 3 times within 60s; stopping the live "
                                              r"SOC\. Its last lines:\n    cannot open the lake"):
        supervisor.run(threading.Event())
    assert steady.process is not None and steady.process.poll() is not None  # stopped with the others
    assert lines.count("[failing] cannot open the lake: permission denied") == 3


def test_parts_stop_in_the_order_given_each_finishing_its_work() -> None:
    lines: list[str] = []
    graceful = ("import signal, sys, time\n"
                "def stop(*_):\n"
                "    print('{name} flushed'); sys.exit(0)\n"
                "signal.signal(signal.SIGTERM, stop)\n"
                "print('{name} up')\n"
                "while True: time.sleep(0.1)\n")
    parts = [python_part(name, graceful.format(name=name)) for name in ("api", "intake", "detection")]
    stop = threading.Event()
    supervisor = Supervisor(parts, stop_order=["intake", "detection", "api"], output=lines.append)
    runner = threading.Thread(target=supervisor.run, args=(stop,))
    runner.start()
    assert supervisor.ready.wait(30)
    deadline = time.monotonic() + 30
    while len([line for line in lines if line.endswith(" up")]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    runner.join(timeout=60)
    assert [line for line in lines if "flushed" in line] == [
        "[intake] intake flushed", "[detection] detection flushed", "[api] api flushed"]
    assert all(part.process is not None and part.process.returncode == 0 for part in parts)
