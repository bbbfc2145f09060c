"""Pulls from the providers' audit APIs: each source's puller fetches batches of native records, the runner
hands each batch to the spool (durable when `append` returns) and only then advances the source's checkpoint.

At-least-once fetch plus the store's idempotent event ids (the provider's own record ids) gives exactly-once
storage: a crash between the append and the checkpoint re-fetches that batch once, and the store skips it.
See collectors/README.md ("Cloud pulls") for the providers, their checkpoints and what each test runs against.
"""

from collectors.pull.base import (
    PullBatch,
    Puller,
    PullError,
    PullSource,
    SecretError,
    get_puller,
    puller_kinds,
    resolve_secret,
)
from collectors.pull.checkpoints import PullCheckpoints
from collectors.pull.runner import PullReport, PullRunner

__all__ = ["PullBatch", "PullCheckpoints", "PullError", "PullReport", "PullRunner", "PullSource", "Puller",
           "SecretError", "get_puller", "puller_kinds", "resolve_secret"]
