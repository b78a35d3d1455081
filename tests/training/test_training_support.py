"""Synthetic training data for the training tests (no test functions here).

Conformations of a few small CHNO molecules, randomly displaced from their equilibrium
geometries, labelled by an analytic potential: known per-element self energies plus a
harmonic term ``k (r - r0)**2`` for every pair of atoms closer than 1.6 Å at equilibrium,
with analytic forces. The potential, not any code under test, defines the labels.
"""

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.training.data import Dataset

#: Equilibrium geometries (Å): atomic numbers and positions.
MOLECULES: Dict[str, Tuple[Sequence[int], np.ndarray]] = {
    "H2O": ([8, 1, 1], np.array([[0.0, 0.0, 0.117], [0.0, 0.757, -0.467], [0.0, -0.757, -0.467]])),
    "CH4": ([6, 1, 1, 1, 1], np.array([[0.0, 0.0, 0.0], [0.629, 0.629, 0.629], [-0.629, -0.629, 0.629],
                                       [-0.629, 0.629, -0.629], [0.629, -0.629, -0.629]])),
    "NH3": ([7, 1, 1, 1], np.array([[0.0, 0.0, 0.116], [0.0, 0.939, -0.271], [0.813, -0.470, -0.271],
                                    [-0.813, -0.470, -0.271]])),
    "CH2O": ([6, 8, 1, 1], np.array([[0.0, 0.0, -0.53], [0.0, 0.0, 0.68], [0.0, 0.94, -1.11], [0.0, -0.94, -1.11]])),
    "CH3OH": ([6, 8, 1, 1, 1, 1], np.array([[-0.047, 0.665, 0.0], [-0.047, -0.758, 0.0], [-1.09, 0.97, 0.0],
                                            [0.43, 1.08, 0.89], [0.43, 1.08, -0.89], [0.87, -1.06, 0.0]])),
}

#: Self energies of the synthetic potential (Ha) by atomic number.
SELF_ENERGIES: Dict[int, float] = {1: -0.5, 6: -37.8, 7: -54.5, 8: -75.0}
#: Harmonic force constant (Ha/Å^2).
FORCE_CONSTANT = 0.3


def analytic_energy_forces(z: Sequence[int], x: np.ndarray, x0: np.ndarray, scale: float = 1.0) -> Tuple[float, np.ndarray]:
    """Energy (Ha) and forces (Ha/Å) of the synthetic potential for positions ``x`` [n, 3]."""
    n = len(z)
    energy = sum(SELF_ENERGIES[int(a)] for a in z)
    forces = np.zeros((n, 3))
    for i in range(n):
        for j in range(i + 1, n):
            r0 = np.linalg.norm(x0[i] - x0[j])
            if r0 > 1.6:
                continue
            d = x[i] - x[j]
            r = np.linalg.norm(d)
            energy += scale * FORCE_CONSTANT * (r - r0) ** 2
            g = 2 * scale * FORCE_CONSTANT * (r - r0) * d / r
            forces[i] -= g
            forces[j] += g
    return energy, forces


def synthetic_dataset(per_molecule: int, seed: int, sigma: float = 0.08, scale: float = 1.0,
                      names: Optional[Sequence[str]] = None) -> Dataset:
    """``per_molecule`` displaced conformations of each molecule, padded to 6 atoms, with analytic labels."""
    rng = np.random.default_rng(seed)
    names = list(MOLECULES) if names is None else list(names)
    width = max(len(MOLECULES[m][0]) for m in names)
    zs, xs, es, fs, groups = [], [], [], [], []
    for name in names:
        z, x0 = MOLECULES[name]
        for _ in range(per_molecule):
            x = x0 + rng.normal(0.0, sigma, size=x0.shape)
            e, f = analytic_energy_forces(z, x, x0, scale)
            pad = width - len(z)
            zs.append(np.concatenate([z, np.zeros(pad, dtype=np.int64)]))
            xs.append(np.concatenate([x, np.zeros((pad, 3))]))
            fs.append(np.concatenate([f, np.zeros((pad, 3))]))
            es.append(e)
            groups.append(name)
    return Dataset(np.array(zs), np.array(xs), np.array(es), np.array(fs), group=np.array(groups))
