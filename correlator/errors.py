"""The correlator's errors, and where a problem with a rule is.

Every error the correlator raises derives from `CorrelatorError`. A problem that belongs to a rule file
(a rule that cannot run, a check finding, an evidence case) carries a `RuleLocation`, so every report
points at the same `path:line`.
"""

from __future__ import annotations

from dataclasses import dataclass

from citysoc.errors import CitySocError


@dataclass(frozen=True, order=True)
class RuleLocation:
    """A place in a rule or evidence file: `path` (empty when unknown), a 1-based `line` (0: the file) and, where
    known (YAML syntax errors), a 1-based `column` (0: unknown)."""

    path: str = ""
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if not self.line:
            return self.path
        return f"{self.path}:{self.line}:{self.column}" if self.column else f"{self.path}:{self.line}"


class CorrelatorError(CitySocError):
    """Root of the correlator's errors."""


class RuleCompileError(CorrelatorError):
    """A rule set cannot be compiled at all (e.g. a rule directory does not exist)."""


class EvidenceError(CorrelatorError):
    """An evidence file is malformed; the message names the file, line and case."""


class BacktestError(CorrelatorError):
    """A backtest cannot run as asked (a malformed expectation, no events to replay)."""


class AttackDataError(CorrelatorError):
    """The offline MITRE ATT&CK data cannot be read or built."""


class EngineError(CorrelatorError):
    """The detection engine was asked something it cannot do (no rules, an impossible option)."""
