"""Offline set-up for the official `sigma check` (sigma-cli) on a CitySOC rule set.

sigma-cli's `check` reaches for the network in two ways: pySigma's ATT&CK loader downloads MITRE's
STIX bundle, and several SigmaHQ validators download SigmaHQ's taxonomy and naming data. CI has no
internet, so out of the box it crashes. Two things make it work offline:
- `install_attack_cache`: the project's offline ATT&CK data (`AttackData`) goes into pySigma's own disk
  cache, where `sigma check` finds it as if it had downloaded it; the `attacktag` validator then runs;
- `validation_config`: a sigma-cli validation config with every validator except those that download
  data or enforce SigmaHQ's repository conventions (`NETWORK_OR_SIGMAHQ_ONLY`, each with its reason),
  and, per rule that carries our own `citysoc:` attribute, an exclusion of `sigmahq_unknown_field` for
  that rule alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from sigma.data import mitre_attack

from correlator.authoring.attack import AttackData
from correlator.authoring.check import EXCLUDED_VALIDATORS, OWN_ATTRIBUTES, rule_files

PYSIGMA_ATTACK_CACHE = Path.home() / ".cache" / "pysigma" / "mitre_attack"

# `soc rules check` replaces these with checks of its own; sigma-cli can run them offline, so they stay on there.
_RUN_BY_SIGMA_CLI = frozenset({"attacktag", "identifier_uniqueness", "duplicate_filename"})
NETWORK_OR_SIGMAHQ_ONLY: dict[str, str] = {
    name: reason for name, reason in EXCLUDED_VALIDATORS.items() if name not in _RUN_BY_SIGMA_CLI}


def install_attack_cache(data: AttackData, cache_dir: Path | None = None) -> Path:
    """Put `data` into pySigma's ATT&CK disk cache (default: the user's, where `sigma` looks); returns the
    cache folder. Replaces whatever ATT&CK data the cache held."""
    folder = cache_dir or PYSIGMA_ATTACK_CACHE
    data.install_for_pysigma(folder.parent / "citysoc-attack")  # points the loader at the offline file
    mitre_attack.set_cache_dir(str(folder))
    mitre_attack.clear_cache()
    techniques = mitre_attack.mitre_attack_techniques  # loads the file and stores it in the cache
    if len(techniques) != len(data.techniques):
        raise RuntimeError(f"pySigma's ATT&CK cache in {folder} holds {len(techniques)} techniques, "
                           f"expected {len(data.techniques)}")
    return folder


def _own_attribute_rules(paths: Iterable[Path]) -> list[str]:
    """Ids of the rules that carry our own attribute (sigma-cli's `sigmahq_unknown_field` calls it unknown)."""
    ids: list[str] = []
    for path in rule_files(list(paths)):
        try:
            documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        except (OSError, yaml.YAMLError):
            continue  # `sigma check` reports the file itself
        for document in documents:
            if isinstance(document, dict) and isinstance(document.get("id"), str) and OWN_ATTRIBUTES & set(document):
                ids.append(document["id"])
    return sorted(set(ids))


def validation_config(paths: Iterable[Path]) -> dict[str, Any]:
    """sigma-cli's validation config (`sigma check -c FILE`) for the rules under `paths`."""
    return {
        "validators": ["all", *(f"-{name}" for name in sorted(NETWORK_OR_SIGMAHQ_ONLY))],
        "exclusions": {rule_id: ["sigmahq_unknown_field"] for rule_id in _own_attribute_rules(paths)},
    }


def write_validation_config(paths: Iterable[Path], target: Path) -> dict[str, Any]:
    config = validation_config(paths)
    header = ("# sigma-cli validation config for CitySOC rules, written by `soc rules sigma-cli`.\n"
              "# Left out (they download data or enforce SigmaHQ's repository conventions):\n"
              + "".join(f"#   {name}: {NETWORK_OR_SIGMAHQ_ONLY[name]}\n" for name in sorted(NETWORK_OR_SIGMAHQ_ONLY))
              + "# Per rule: sigmahq_unknown_field, for rules that carry our own `citysoc:` attribute.\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(header + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return config
