"""Sigma rules -> compiled rules (`correlator.model`), with a reason for every rule that cannot run.

- `logsources`: which datasets serve a Sigma log source, and its field names -> ECS (pySigma pipelines);
- `backend`: `CitySocSparkBackend`, Sigma conditions -> `correlator.sql.Condition` with Sigma's semantics;
- `analysis`: what a rule's detection tree guarantees (its route key, the literals it needs);
- `regex_literals`: a literal every match of a regular expression contains;
- `rule_compiler`: `RuleCompiler`, which ties them together and lets Spark analyse the result.
"""

from correlator.compiler.rule_compiler import DEFAULT_RULES_DIR, RuleCompiler

__all__ = ["DEFAULT_RULES_DIR", "RuleCompiler"]
