#!/usr/bin/env python
"""Generate the TorchANI reference energies and forces used by ``tests/test_core_reference.py``.

The reference is TorchANI 2.2.4 (an independent implementation of ANI) in float64, loaded
with the same published NeuroChem folders that openmm-ani bundles. For each structure it
stores, for both ANI-1ccx and ANI-1x, the ensemble energy and forces and the energy and
forces of each of the 8 ensemble members.

Structures are real inputs shipped with openmmtools (read with ``openmm.app``), perturbed
off equilibrium with a seeded Gaussian displacement, restricted to H, C, N, O:

* ``pxylene``: the p-xylene ligand (residue TMP) of T4 lysozyme L99A, from ``complex.prmtop``/``complex.crd``;
* ``alanine_dipeptide``: ACE-ALA-NME from ``alanine-dipeptide-gbsa``;
* ``toluene``: residue TOL of ``benzene-toluene-implicit/complex``;
* ``cb7_b2_guest``: the B2 guest of the CB7-B2 host-guest pair (``cb7-b2/ligand``);
* ``water_box``: ``openmmtools.testsystems.WaterBox`` of 255 atoms in a 14 Å cubic box,
  evaluated with TorchANI's periodic path (``cell`` and ``pbc``);
* ``water_triclinic``: the same box and coordinates sheared into a triclinic cell (fractional
  coordinates kept), again periodic.

Periodic positions are stored wrapped into the cell (TorchANI expects wrapped coordinates).
Units: positions and cells in Å, energies in Ha, forces in Ha/Å.

    python scripts/generate_reference.py [--out tests/data]
"""

import argparse
import datetime
import json
import os
import warnings
from typing import Dict, List, Tuple

import numpy as np
import torch

import openmm.app as app
import openmm.unit as unit

SEED = 20240611
SIGMA_ANGSTROM = 0.07
WATER_BOX_EDGE_NM = 1.4
#: Shear of the triclinic water cell: b gets +SHEAR_B * a_x along x, c gets SHEAR_C * (a_x, a_x) along (x, y).
SHEAR_B = 0.25
SHEAR_C = (0.15, -0.2)
MODELS = {"ani1ccx": "ANI1ccx", "ani1x": "ANI1x"}
ALLOWED = {1, 6, 7, 8}


def openmmtools_data(*parts: str) -> str:
    """Path of a file in the installed openmmtools package's data folder."""
    import openmmtools

    return os.path.join(os.path.dirname(openmmtools.__file__), "data", *parts)


def _residue_atoms(prmtop: str, coords: str, residues: List[str] | None) -> Tuple[np.ndarray, np.ndarray]:
    top = app.AmberPrmtopFile(prmtop).topology
    xyz = app.AmberInpcrdFile(coords).getPositions(asNumpy=True).value_in_unit(unit.angstrom)
    numbers, positions = [], []
    for atom in top.atoms():
        if residues is None or atom.residue.name in residues:
            numbers.append(atom.element.atomic_number)
            positions.append(xyz[atom.index])
    return np.array(numbers, dtype=np.int64), np.array(positions, dtype=np.float64)


def structures() -> Dict[str, Dict]:
    """The unperturbed structures: name -> dict(numbers, positions Å, cell Å or None, source)."""
    out: Dict[str, Dict] = {}
    for name, folder, prmtop, crd, residues in [
        ("pxylene", "T4-lysozyme-L99A-implicit", "complex.prmtop", "complex.crd", ["TMP"]),
        ("alanine_dipeptide", "alanine-dipeptide-gbsa", "alanine-dipeptide.prmtop", "alanine-dipeptide.crd", None),
        ("toluene", "benzene-toluene-implicit", "complex.prmtop", "complex.inpcrd", ["TOL"]),
        ("cb7_b2_guest", "cb7-b2", "ligand.prmtop", "ligand.inpcrd", None),
    ]:
        z, x = _residue_atoms(openmmtools_data(folder, prmtop), openmmtools_data(folder, crd), residues)
        out[name] = {
            "numbers": z, "positions": x, "cell": None,
            "source": f"openmmtools/data/{folder}/{prmtop} + {crd}" + (f", residues {residues}" if residues else ""),
        }
    from openmmtools import testsystems

    water = testsystems.WaterBox(box_edge=WATER_BOX_EDGE_NM * unit.nanometer)
    z = np.array([a.element.atomic_number for a in water.topology.atoms()], dtype=np.int64)
    x = np.asarray(water.positions.value_in_unit(unit.angstrom), dtype=np.float64)
    box = np.array(
        [[v.value_in_unit(unit.angstrom) for v in vec] for vec in water.system.getDefaultPeriodicBoxVectors()]
    )
    out["water_box"] = {
        "numbers": z, "positions": x, "cell": box,
        "source": f"openmmtools.testsystems.WaterBox(box_edge={WATER_BOX_EDGE_NM} nm) (TIP3P, {len(z)} atoms)",
    }
    edge = box[0, 0]
    sheared = np.array([[edge, 0.0, 0.0], [SHEAR_B * edge, edge, 0.0], [SHEAR_C[0] * edge, SHEAR_C[1] * edge, edge]])
    frac = x @ np.linalg.inv(box)
    out["water_triclinic"] = {
        "numbers": z, "positions": frac @ sheared, "cell": sheared,
        "source": "water_box with fractional coordinates kept in a sheared triclinic cell "
        f"(b += {SHEAR_B} a_x along x, c += {SHEAR_C} a_x along x, y)",
    }
    for name, s in out.items():
        bad = sorted(set(s["numbers"].tolist()) - ALLOWED)
        if bad:
            raise ValueError(f"{name}: elements {bad} outside H, C, N, O")
    return out


def perturb(positions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Seeded Gaussian displacement of every coordinate (standard deviation SIGMA_ANGSTROM)."""
    return positions + rng.normal(0.0, SIGMA_ANGSTROM, size=positions.shape)


def wrap(positions: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """Positions wrapped into the cell (fractional coordinates in [0, 1))."""
    frac = positions @ np.linalg.inv(cell)
    return (frac - np.floor(frac)) @ cell


def torchani_reference(model, numbers: np.ndarray, positions: np.ndarray, cell) -> Dict[str, np.ndarray]:
    """Ensemble and member energies (Ha) and forces (Ha/Å) from a TorchANI BuiltinEnsemble."""
    species = torch.tensor(numbers, dtype=torch.long).unsqueeze(0)
    kwargs = {}
    if cell is not None:
        kwargs = {"cell": torch.tensor(cell, dtype=torch.float64), "pbc": torch.tensor([True, True, True])}

    def energy_and_forces(module) -> Tuple[float, np.ndarray]:
        x = torch.tensor(positions, dtype=torch.float64).unsqueeze(0).requires_grad_(True)
        energy = module((species, x), **kwargs).energies
        (grad,) = torch.autograd.grad(energy.sum(), x)
        return float(energy.item()), (-grad[0]).numpy().copy()

    energy, forces = energy_and_forces(model)
    member_energies, member_forces = [], []
    for k in range(len(model)):
        e, f = energy_and_forces(model[k])
        member_energies.append(e)
        member_forces.append(f)
    return {
        "energy": np.array(energy), "forces": forces,
        "member_energies": np.array(member_energies), "member_forces": np.stack(member_forces),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "data"))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import torchani

    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    models = {name: getattr(torchani.models, cls)(periodic_table_index=True).double() for name, cls in MODELS.items()}
    arrays: Dict[str, np.ndarray] = {}
    info: Dict[str, Dict] = {}
    for name, s in structures().items():
        positions = perturb(s["positions"], rng)
        if s["cell"] is not None:
            positions = wrap(positions, s["cell"])
            arrays[f"{name}__cell"] = s["cell"]
        arrays[f"{name}__atomic_numbers"] = s["numbers"]
        arrays[f"{name}__positions"] = positions
        info[name] = {"source": s["source"], "num_atoms": int(len(s["numbers"])), "periodic": s["cell"] is not None}
        for model_name, model in models.items():
            ref = torchani_reference(model, s["numbers"], positions, s["cell"])
            for key, value in ref.items():
                arrays[f"{name}__{model_name}__{key}"] = value
            print(f"{name:18s} {model_name:8s} N={len(s['numbers']):4d} E={float(ref['energy']):.8f} Ha")
    provenance = {
        "description": "TorchANI float64 reference energies (Ha) and forces (Ha/Å) for openmm-ani tests",
        "generated_by": "scripts/generate_reference.py",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torchani_version": torchani.__version__,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "reference_models": {k: f"torchani.models.{v}(periodic_table_index=True).double()" for k, v in MODELS.items()},
        "periodic_call": "model((species, coordinates), cell=cell, pbc=torch.tensor([True, True, True]))",
        "perturbation": f"Gaussian displacement of every coordinate, sigma {SIGMA_ANGSTROM} Å, "
        f"numpy.random.default_rng({SEED}), drawn in the order of 'structures'",
        "seed": SEED,
        "sigma_angstrom": SIGMA_ANGSTROM,
        "periodic_positions": "wrapped into the cell after perturbation",
        "units": {"positions": "Å", "cell": "Å (rows are box vectors)", "energy": "Ha", "forces": "Ha/Å"},
        "keys": "<structure>__atomic_numbers, __positions, __cell (periodic only), "
        "<structure>__<model>__energy / forces [N,3] / member_energies [8] / member_forces [8,N,3]",
        "structures": info,
    }
    os.makedirs(args.out, exist_ok=True)
    npz = os.path.join(args.out, "ani_reference.npz")
    tmp = npz + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, npz)
    meta = os.path.join(args.out, "ani_reference.json")
    with open(meta + ".tmp", "w") as handle:
        json.dump(provenance, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    os.replace(meta + ".tmp", meta)
    print(f"wrote {os.path.normpath(npz)} ({os.path.getsize(npz) / 1e3:.0f} kB) and {os.path.normpath(meta)}")


if __name__ == "__main__":
    main()
