"""Where each pull source stands: one small JSON file per source, replaced atomically (written, fsync'ed,
renamed, directory fsync'ed), so a crash at any instant leaves the previous checkpoint or the new one whole."""

from __future__ import annotations

import json
from pathlib import Path

from citysoc.store.durable import make_dirs_durably, replace_atomically
from collectors.pull.base import Checkpoint, PullError, PullSource


class PullCheckpoints:
    """Checkpoints under `directory` (the service uses `$SOC_HOME/pull/checkpoints`), keyed by source id and kind:
    a source removed and another registered never share one."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        make_dirs_durably(directory)

    def path(self, source: PullSource) -> Path:
        return self.directory / f"source-{source.id}-{source.kind}.json"

    def load(self, source: PullSource) -> Checkpoint | None:
        path = self.path(source)
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            raise PullError("the checkpoint is unreadable (it is only ever replaced whole, so something else wrote "
                            "it); delete it to pull from the start again, which the store de-duplicates",
                            where=str(path)) from None
        if not isinstance(document, dict) or not isinstance(document.get("state"), dict):
            raise PullError("the checkpoint holds no state: delete it to pull from the start", where=str(path))
        state: Checkpoint = document["state"]
        return state

    def save(self, source: PullSource, state: Checkpoint) -> None:
        replace_atomically(self.path(source), json.dumps({"version": 1, "source": source.id, "kind": source.kind,
                                                          "state": state}, sort_keys=True).encode())
