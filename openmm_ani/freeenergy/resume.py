"""What a stored correction depends on, and the check that a rerun may continue it.

``<output>/settings.json`` holds the protocol settings and, per leg, a fingerprint of the inputs:
the input files' SHA-256 (when the leg came from files), the particle count, the ligand's atom
indices and elements, and hashes of the MM System and the start coordinates. A rerun into the
same directory continues it only when the settings that determine the stored samples
(:meth:`ProtocolSettings.determining`) and the fingerprints are unchanged; settings that only
say how far to go (iterations, switches, target error, time budget) may change and extend the
run. Otherwise :func:`check_resumable` raises one line listing the differences.
"""

import hashlib
import json
import os
import shutil
from typing import Any, Dict, List, Optional

import numpy as np
import openmm
from openmm import unit

from ..files import sha256_of
from ..resume import raise_if_different, settings_differences
from .settings import ProtocolSettings

#: Version of the stored layout; a directory written by another version is not resumed.
LAYOUT_VERSION = 2
#: What :func:`clear_output` removes: the files and folders a correction writes.
OUTPUT_ENTRIES = ("settings.json", "results.json", "complex", "solvent")


def ligand_elements(topology: Any, ml_atoms: List[int]) -> List[str]:
    """Element symbols of ``ml_atoms`` in the given order (``"?"`` for an atom without element)."""
    atoms = list(topology.atoms())
    return [atoms[i].element.symbol if atoms[i].element is not None else "?" for i in ml_atoms]


def leg_fingerprint(leg: Any) -> Dict[str, Any]:
    """Fingerprint of a :class:`~openmm_ani.freeenergy.workflow.LegInput` (see the module docstring)."""
    ml_atoms = [int(i) for i in leg.ml_atoms]
    positions = leg.positions
    if isinstance(positions, unit.Quantity):
        positions = positions.value_in_unit(unit.nanometer)
    coordinates = np.round(np.asarray(positions, dtype=float), 6)
    system_xml = openmm.XmlSerializer.serialize(leg.system)
    return {
        "files": {option: sha256_of(path) for option, path in sorted((leg.files or {}).items())},
        "n_particles": int(leg.system.getNumParticles()),
        "ligand_atoms": ml_atoms,
        "ligand_elements": ligand_elements(leg.topology, ml_atoms),
        "system_sha256": hashlib.sha256(system_xml.encode()).hexdigest(),
        "positions_sha256": hashlib.sha256(coordinates.tobytes()).hexdigest(),
    }


def record(settings: ProtocolSettings, fingerprints: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The content of ``settings.json``."""
    return {"layout_version": LAYOUT_VERSION, "settings": settings.to_dict(), "inputs": fingerprints}


#: Leg fingerprints shown as what changed, not by value (hashes, the table of input files).
_OPAQUE = {
    "files": lambda a, b: "input files changed ({})".format(
        ", ".join(sorted(k for k in set(a or {}) | set(b or {}) if (a or {}).get(k) != (b or {}).get(k)))),
    "system_sha256": lambda a, b: "system changed",
    "positions_sha256": lambda a, b: "positions changed",
}
#: How a difference of the correction's settings reads ("seed 2024 -> 7").
_ARROW = "{key} {old} -> {new}"


def differences(stored: Dict[str, Any], current: Dict[str, Any]) -> List[str]:
    """Human-readable differences that forbid continuing ``stored`` with ``current`` (both :func:`record` dicts)."""
    if stored.get("layout_version") != LAYOUT_VERSION:
        return [f"the directory was written by another openmm-ani version (layout {stored.get('layout_version', 1)})"]
    old = ProtocolSettings(**stored["settings"]).determining()
    new = ProtocolSettings(**current["settings"]).determining()
    found = settings_differences(old, new, template=_ARROW, quote_strings=True)
    for leg in sorted(set(stored["inputs"]) | set(current["inputs"])):
        found += settings_differences(stored["inputs"].get(leg, {}), current["inputs"].get(leg, {}), prefix=f"{leg} ",
                                      template=_ARROW, quote_strings=True, custom=_OPAQUE)
    return found


def check_resumable(output_dir: str, current: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The stored record of ``output_dir`` if a run with ``current`` may continue it.

    Returns
    -------
    dict or None
        The stored record, or ``None`` for a directory without a stored run.

    Raises
    ------
    ValueError
        One line listing what differs, and how to start afresh.
    """
    path = os.path.join(output_dir, "settings.json")
    if not os.path.exists(path):
        if any(os.path.exists(os.path.join(output_dir, leg)) for leg in ("complex", "solvent")):
            raise ValueError(f"{output_dir} holds leg data but no settings.json: use --overwrite or a new --output")
        return None
    with open(path) as stream:
        stored = json.load(stream)
    raise_if_different(differences(stored, current), f"{output_dir} holds a run with other settings or inputs",
                       "rerun with --overwrite to start afresh, or choose a new --output")
    return stored


def clear_output(output_dir: str) -> None:
    """Remove what a correction wrote into ``output_dir`` (:data:`OUTPUT_ENTRIES`); other files stay."""
    for name in OUTPUT_ENTRIES:
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
