"""Reference link-atom results from openmm-ml 1.8 itself (tests/data/openmmml18_link_atoms.json).

openmm-ml 1.8 (link atoms, TorchANI through ``openmm.PythonForce``) needs OpenMM >= 8.6.1, which
openmm-ani's pinned stack cannot use, so this script runs in a throw-away overlay of the
project's virtual environment::

    .venv/bin/pip install --target .openmmml18 --no-deps "openmm==8.6.1" "openmmml==1.8"
    PYTHONPATH=.openmmml18 OMP_NUM_THREADS=1 .venv/bin/python scripts/openmmml18_link_reference.py

(torch, TorchANI 2.2.4 with the published ANI-1ccx weights — ``scripts/setup_test_reference.py``
— and openmmtools come from ``.venv``.) For each case it builds openmm-ml 1.8's
``MLPotential("ani1ccx").createMixedSystem(...)`` of an openmmtools test system with an ML region
cut through covalent bonds, and records on the Reference platform:

* the positions of the hydrogen caps (openmm-ml's virtual sites, nm);
* the energy of the mixed System, split into the MM part (force group 0) and the ANI part of
  the ML atoms + caps (force group 1), kJ/mol (ANI in float32, as openmm-ml runs it);
* the MM bonded terms it removed (particle tuples per force type);
* with ``interpolate=True``, the energies at several ``lambda_interpolate`` values.

openmm-ml 1.8's ANI forces are 10x too small (kJ/mol/Å reported as kJ/mol/nm), so no forces are
stored; the tests check forces against finite differences of energies instead.
"""

import contextlib
import importlib.metadata
import io
import json
import os
import sys
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch  # noqa: F401  (before OpenMM: TorchANI and openmm-ml's PythonForce use it)

import openmm
from openmm import app, unit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUTPUT = os.path.join(ROOT, "tests", "data", "openmmml18_link_atoms.json")
NM = unit.nanometer
KJ = unit.kilojoule_per_mole
LAMBDAS = (0.0, 0.5, 1.0)


def residue_atoms(topology: app.Topology, residue_name: str, residue_index: Optional[int] = None,
                  side_chain: bool = False) -> List[int]:
    """Atoms of a residue (or of its side chain: everything but N, H, CA, HA, C, O)."""
    backbone = {"N", "H", "CA", "HA", "C", "O"}
    return [a.index for a in topology.atoms() if a.residue.name == residue_name
            and (residue_index is None or a.residue.index == residue_index)
            and not (side_chain and a.name in backbone)]


def bonded_terms(system: openmm.System) -> Dict[str, Counter]:
    """Particle tuples of every bonded term, per force type (multisets: torsions repeat)."""
    terms: Dict[str, Counter] = {}
    for force in system.getForces():
        name = type(force).__name__
        if isinstance(force, openmm.HarmonicBondForce):
            found = [tuple(force.getBondParameters(k)[:2]) for k in range(force.getNumBonds())]
        elif isinstance(force, openmm.HarmonicAngleForce):
            found = [tuple(force.getAngleParameters(k)[:3]) for k in range(force.getNumAngles())]
        elif isinstance(force, openmm.PeriodicTorsionForce):
            found = [tuple(force.getTorsionParameters(k)[:4]) for k in range(force.getNumTorsions())]
        else:
            continue
        terms.setdefault(name, Counter()).update(found)
    return terms


def removed_terms(mm: openmm.System, mixed: openmm.System) -> Dict[str, List[List[int]]]:
    before, after = bonded_terms(mm), bonded_terms(mixed)
    return {name: sorted(list(t) for t in (before[name] - after.get(name, Counter())).elements()) for name in before}


def energies(system: openmm.System, positions: np.ndarray) -> Dict[str, Any]:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    extra = system.getNumParticles() - positions.shape[0]
    context.setPositions(np.concatenate([positions, np.zeros((extra, 3))]) * NM)
    context.computeVirtualSites()
    state = context.getState(getPositions=True)
    result: Dict[str, Any] = {"caps_nm": state.getPositions(asNumpy=True).value_in_unit(NM)[positions.shape[0]:].tolist()}
    for key, groups in (("total", -1), ("mm", 1 << 0), ("ani", 1 << 1)):
        result[key] = context.getState(getEnergy=True, groups=groups).getPotentialEnergy().value_in_unit(KJ)
    names = [context.getSystem().getForce(k) for k in range(system.getNumForces())]
    if any(isinstance(f, openmm.CustomCVForce) for f in names):
        result["lambda"] = {}
        for value in LAMBDAS:
            context.setParameter("lambda_interpolate", value)
            result["lambda"][repr(value)] = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(KJ)
    return result


def run_case(name: str, make: Callable[[], Any], select: Callable[[app.Topology], List[int]],
             distances: Sequence[Any] = (), interpolate: bool = True) -> Dict[str, Any]:
    from openmmml import MLPotential

    ts = make()
    ml = select(ts.topology)
    positions = np.array(ts.positions.value_in_unit(NM))
    potential = MLPotential("ani1ccx")
    args: Dict[str, Any] = {"linkAtomDistances": list(distances)} if distances else {}
    with contextlib.redirect_stdout(io.StringIO()):
        info = potential.createMixedSystem(ts.topology, ts.system, ml, forceGroup=1, returnInfo=True, **args)
    mixed = info["system"]
    caps = list(range(ts.system.getNumParticles(), mixed.getNumParticles()))
    links = [[mixed.getVirtualSite(c).getParticle(0), mixed.getVirtualSite(c).getParticle(1)] for c in caps]
    result: Dict[str, Any] = {
        "testsystem": type(ts).__name__,
        "ml_atoms": ml,
        "link_bonds": links,
        "link_atom_distances_nm": [[i, j, d] for i, j, d in distances],
        "positions_nm": {str(i): positions[i].tolist() for i in sorted(set(ml) | {j for _, j in links})},
        "removed_terms": removed_terms(ts.system, mixed),
        "mixed": energies(mixed, positions),
        "mm_energy": energies(ts.system, positions)["total"],
    }
    if interpolate:
        with contextlib.redirect_stdout(io.StringIO()):
            interpolating = potential.createMixedSystem(ts.topology, ts.system, ml, forceGroup=1, interpolate=True, **args)
        result["interpolated"] = energies(interpolating, positions)
    print(f"{name}: {len(ml)} ML atoms, caps on {links}, E = {result['mixed']['total']:.4f} kJ/mol", file=sys.stderr)
    return result


def main() -> None:
    versions = {name: importlib.metadata.version(name) for name in ("openmm", "openmmml", "torch", "torchani", "openmmtools")}
    if versions["openmmml"] != "1.8" or not openmm.__version__.startswith("8.6"):
        sys.exit(f"needs openmm-ml 1.8 on OpenMM 8.6 (found {versions}); see this script's docstring")
    with contextlib.redirect_stdout(io.StringIO()):
        from openmmtools import testsystems

    def t4_vacuum() -> Any:
        return testsystems.LysozymeImplicit(implicitSolvent=None)

    def t4_side_chains(topology: app.Topology) -> List[int]:
        return residue_atoms(topology, "TYR", 87, side_chain=True) + residue_atoms(topology, "PHE", 152, side_chain=True)

    cases = {
        "dipeptide-vacuum": run_case("dipeptide-vacuum", testsystems.AlanineDipeptideVacuum,
                                     lambda t: residue_atoms(t, "ALA")),
        "dipeptide-vacuum-distance": run_case("dipeptide-vacuum-distance", testsystems.AlanineDipeptideVacuum,
                                              lambda t: residue_atoms(t, "ALA"), distances=[(4, 6, 0.1)],
                                              interpolate=False),
        "dipeptide-explicit-pme": run_case("dipeptide-explicit-pme", testsystems.AlanineDipeptideExplicit,
                                           lambda t: residue_atoms(t, "ALA"), interpolate=False),
        "t4-side-chains-vacuum": run_case("t4-side-chains-vacuum", t4_vacuum, t4_side_chains),
    }
    notes = {}
    try:  # openmm-ml 1.8 adds its caps to NonbondedForce/CustomNonbondedForce only, not to implicit solvent forces
        run_case("t4-side-chains-gb", testsystems.LysozymeImplicit, t4_side_chains, interpolate=False)
    except Exception as error:  # recorded, not raised: the point is what openmm-ml 1.8 does
        notes["t4-side-chains-gb"] = f"{type(error).__name__}: {str(error).strip().splitlines()[0]}"
    sys.path.insert(0, ROOT)
    from openmm_ani.files import write_text

    data = {
        "provenance": {
            "script": "scripts/openmmml18_link_reference.py",
            "versions": versions,
            "potential": 'openmmml.MLPotential("ani1ccx") (TorchANI ANI-1ccx ensemble, float32, openmm.PythonForce)',
            "platform": "Reference",
            "units": "nm, kJ/mol; energies 'mm' = force group 0, 'ani' = group 1 (ML atoms + caps)",
            "lambdas": list(LAMBDAS),
        },
        "notes": notes,
        "cases": cases,
    }
    write_text(OUTPUT, json.dumps(data, indent=1) + "\n")
    print(f"wrote {OUTPUT}; notes: {notes}", file=sys.stderr)


if __name__ == "__main__":
    main()
