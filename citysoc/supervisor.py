"""A small process supervisor: what `soc run` uses to keep the parts of the live SOC running as one command.

Each `Part` is a child process (a `soc` command of its own: the case API, the intake, continuous detection)
started in order, each once the one before it is ready. Their output reaches the supervisor's stderr line by
line, prefixed with the part's name. A part that exits on its own is restarted after a growing pause, at most
`max_restarts` times within `restart_window` seconds; past that the supervisor stops the others and fails
with the part's name, exit code and last lines (a crash loop is a fault to look at, not to hide).

Stopping (SIGTERM or SIGINT to the supervisor, or `stop` set) goes part by part in `stop_order`: each gets
SIGTERM and its own time to finish (the intake flushes its spool, detection finishes its cycle and writes its
checkpoint), SIGKILL only after `stop_timeout`. Children run in process groups of their own, so a Ctrl-C in
the terminal reaches the supervisor alone and the order holds; on Linux they also get SIGTERM should the
supervisor itself die.

Anchors: supervisord's `startretries`/`startsecs` and systemd's `Restart=on-failure` with `StartLimitBurst`.
"""

from __future__ import annotations

import collections
import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import structlog

from citysoc.errors import CitySocError

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_TAIL_LINES = 20


class PartFailedError(CitySocError):
    """A part of the live SOC kept dying (or never became ready); the message names it and shows its last lines."""


@dataclass
class Part:
    """One child process: its name, command line, environment, and how to tell it is ready (None: at once)."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str]
    ready: Callable[[], bool] | None = None
    ready_timeout: float = 120.0
    stop_timeout: float = 60.0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    restarts: collections.deque[float] = field(default_factory=collections.deque, repr=False)
    tail: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=_TAIL_LINES), repr=False)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# looked up once here: the child, between fork and exec, only makes the call
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux)."""
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Starts `parts` in order, keeps them running, stops them in `stop_order` (names; default: reverse start)."""

    def __init__(self, parts: Sequence[Part], *, stop_order: Sequence[str] | None = None, max_restarts: int = 5,
                 restart_window: float = 600.0, output: Callable[[str], None] | None = None) -> None:
        self.parts = list(parts)
        by_name = {part.name: part for part in self.parts}
        self.stop_order = [by_name[name] for name in stop_order] if stop_order else list(reversed(self.parts))
        self.max_restarts = max_restarts
        self.restart_window = restart_window
        self._output = output or (lambda line: print(line, file=sys.stderr, flush=True))
        self._output_lock = threading.Lock()
        self.ready = threading.Event()

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set (SIGTERM and SIGINT set it when called on the main thread); every part is
        stopped when this returns. Raises `PartFailedError` when a part cannot be kept running."""
        with _stop_on_signals(stop):
            try:
                for part in self.parts:
                    if stop.is_set():
                        return
                    self._start(part)
                    self._await_ready(part, stop)
                self.ready.set()
                log.info("all parts running", parts=[part.name for part in self.parts])
                while not stop.wait(0.5):
                    for part in self.parts:
                        if not part.alive():
                            self._restart(part, stop)
            finally:
                self.shutdown()

    def shutdown(self) -> None:
        """Stop every part still running, in stop order, each given its `stop_timeout`."""
        for part in self.stop_order:
            if part.process is None or part.process.poll() is not None:
                continue
            log.info("stopping part", part=part.name)
            part.process.send_signal(signal.SIGTERM)
            try:
                code = part.process.wait(timeout=part.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("part did not stop in time; killing it", part=part.name, seconds=part.stop_timeout)
                os.killpg(part.process.pid, signal.SIGKILL)
                code = part.process.wait()
            # a server that re-raises the signal after its graceful shutdown (uvicorn) ends "killed by SIGTERM"
            clean = code in (0, -signal.SIGTERM)
            (log.info if clean else log.warning)("part stopped", part=part.name, exit_code=code)

    def _start(self, part: Part) -> None:
        part.process = subprocess.Popen(list(part.argv), env=dict(part.env), stdin=subprocess.DEVNULL,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, process_group=0,
                                        preexec_fn=_die_with_parent)
        threading.Thread(target=self._relay, args=(part, part.process), name=f"output-{part.name}",
                         daemon=True).start()
        log.info("part started", part=part.name, pid=part.process.pid)

    def _relay(self, part: Part, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            part.tail.append(line)
            with self._output_lock:
                self._output(f"[{part.name}] {line}")

    def _await_ready(self, part: Part, stop: threading.Event) -> None:
        if part.ready is None:
            return
        deadline = time.monotonic() + part.ready_timeout
        while not stop.is_set():
            if not part.alive():
                raise self._failure(part, "exited while starting")
            if part.ready():
                return
            if time.monotonic() > deadline:
                raise self._failure(part, f"was not ready within {part.ready_timeout:.0f}s")
            stop.wait(0.2)

    def _restart(self, part: Part, stop: threading.Event) -> None:
        code = part.process.returncode if part.process is not None else None
        now = time.monotonic()
        while part.restarts and now - part.restarts[0] > self.restart_window:
            part.restarts.popleft()
        if len(part.restarts) >= self.max_restarts:
            raise self._failure(part, f"exited (code {code}) {len(part.restarts) + 1} times within "
                                      f"{self.restart_window:.0f}s")
        pause = min(2.0 ** len(part.restarts), 30.0)
        log.warning("part exited; restarting it", part=part.name, exit_code=code, restart_in_seconds=pause)
        part.restarts.append(now)
        if stop.wait(pause):
            return
        self._start(part)
        self._await_ready(part, stop)

    def _failure(self, part: Part, what: str) -> PartFailedError:
        last = "\n".join(f"    {line}" for line in part.tail) or "    (no output)"
        return PartFailedError(f"{part.name} {what}; stopping the live SOC. Its last lines:\n{last}")


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
