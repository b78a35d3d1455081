"""Conformers of small CHNO molecules for label generation: ANI-1x molecular dynamics sampling.

The built-in molecules (:data:`MOLECULES`) have starting geometries embedded here
(generated once with RDKit 2026.09.1 ETKDG, ``randomSeed=7``, and MMFF94
optimisation; RDKit is not needed at run time). :func:`sample_md` runs Langevin
dynamics (BAOAB, in numpy) on the bundled ANI-1x ensemble and
takes snapshots spaced apart, interleaving trajectories at several temperatures
so that any prefix of the returned conformations covers all temperatures.
"""

import logging
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.model.species import atomic_number_of, symbol_of

if TYPE_CHECKING:
    from openmm_ani.model import ANIModel

logger = logging.getLogger(__name__)

#: name -> (SMILES, [(element, x, y, z)] in Å): starting geometries of the built-in CHNO set.
MOLECULES: Dict[str, Tuple[str, List[Tuple[str, float, float, float]]]] = {
    "water": (
        "O",
        [
            ("O",    0.0073,    0.3977,    0.0000),
            ("H",   -0.7670,   -0.1849,    0.0000),
            ("H",    0.7597,   -0.2129,    0.0000),
        ],
    ),
    "methane": (
        "C",
        [
            ("C",    0.0000,   -0.0000,   -0.0000),
            ("H",   -0.7134,   -0.2848,   -0.7764),
            ("H",    0.1162,    1.0860,    0.0070),
            ("H",   -0.3684,   -0.3330,    0.9728),
            ("H",    0.9656,   -0.4682,   -0.2034),
        ],
    ),
    "ammonia": (
        "N",
        [
            ("N",    0.0010,   -0.0042,    0.2956),
            ("H",   -0.5788,   -0.7391,   -0.1070),
            ("H",   -0.3525,    0.8725,   -0.0851),
            ("H",    0.9302,   -0.1292,   -0.1035),
        ],
    ),
    "hydrogen_cyanide": (
        "C#N",
        [
            ("C",   -0.0317,   -0.0005,    0.0000),
            ("N",    1.1282,    0.0169,    0.0000),
            ("H",   -1.0965,   -0.0164,    0.0000),
        ],
    ),
    "formaldehyde": (
        "C=O",
        [
            ("C",   -0.0121,    0.0022,    0.0000),
            ("O",    1.1926,   -0.2176,   -0.0042),
            ("H",   -0.7575,   -0.8090,    0.0012),
            ("H",   -0.4229,    1.0245,    0.0030),
        ],
    ),
    "acetylene": (
        "C#C",
        [
            ("C",   -0.5613,    0.0803,   -0.1967),
            ("C",    0.5613,   -0.0803,    0.1967),
            ("H",   -1.5581,    0.2228,   -0.5460),
            ("H",    1.5581,   -0.2228,    0.5460),
        ],
    ),
    "methanol": (
        "CO",
        [
            ("C",   -0.3711,   -0.0022,    0.0094),
            ("O",    0.9129,   -0.4394,   -0.3964),
            ("H",   -0.4676,   -0.1082,    1.0927),
            ("H",   -1.1280,   -0.6170,   -0.4834),
            ("H",   -0.5092,    1.0427,   -0.2790),
            ("H",    1.5630,    0.1242,    0.0567),
        ],
    ),
    "formic_acid": (
        "OC=O",
        [
            ("O",    0.7921,   -0.5824,   -0.0517),
            ("C",   -0.4217,   -0.0147,    0.0172),
            ("O",   -0.5641,    1.1926,    0.0613),
            ("H",    1.4138,    0.1754,   -0.0538),
            ("H",   -1.2202,   -0.7709,    0.0269),
        ],
    ),
    "ethylene": (
        "C=C",
        [
            ("C",   -0.6667,   -0.0396,   -0.0047),
            ("C",    0.6667,    0.0396,    0.0047),
            ("H",   -1.2810,    0.8441,    0.1367),
            ("H",   -1.1701,   -0.9896,   -0.1540),
            ("H",    1.2810,   -0.8441,   -0.1367),
            ("H",    1.1701,    0.9896,    0.1540),
        ],
    ),
    "methylamine": (
        "CN",
        [
            ("C",   -0.5645,    0.0999,   -0.0386),
            ("N",    0.8503,   -0.0908,   -0.3034),
            ("H",   -1.1564,   -0.6180,   -0.6132),
            ("H",   -0.8704,    1.1088,   -0.3287),
            ("H",   -0.7793,   -0.0398,    1.0247),
            ("H",    1.1288,   -1.0234,   -0.0010),
            ("H",    1.3916,    0.5633,    0.2604),
        ],
    ),
    "formamide": (
        "NC=O",
        [
            ("N",   -0.6865,   -0.0502,    0.0783),
            ("C",    0.6586,    0.0645,   -0.0758),
            ("O",    1.4121,   -0.8951,   -0.1174),
            ("H",   -1.0788,   -0.9789,    0.1624),
            ("H",   -1.3017,    0.7497,    0.1115),
            ("H",    0.9963,    1.1101,   -0.1590),
        ],
    ),
    "acetonitrile": (
        "CC#N",
        [
            ("C",   -0.4862,    0.0037,   -0.0080),
            ("C",    0.9754,   -0.0075,    0.0161),
            ("N",    2.1355,   -0.0164,    0.0353),
            ("H",   -0.8696,   -0.7591,   -0.6922),
            ("H",   -0.8930,   -0.1973,    0.9875),
            ("H",   -0.8621,    0.9765,   -0.3387),
        ],
    ),
    "acetaldehyde": (
        "CC=O",
        [
            ("C",   -0.6262,   -0.0208,   -0.1759),
            ("C",    0.8140,    0.0330,    0.2312),
            ("O",    1.6034,   -0.8874,    0.0468),
            ("H",   -0.8279,    0.7863,   -0.8840),
            ("H",   -1.2531,    0.1022,    0.7103),
            ("H",   -0.8471,   -0.9817,   -0.6470),
            ("H",    1.1369,    0.9684,    0.7186),
        ],
    ),
    "ethane": (
        "CC",
        [
            ("C",   -0.7487,    0.1042,   -0.0133),
            ("C",    0.7487,   -0.1042,    0.0133),
            ("H",   -1.2169,   -0.5641,   -0.7421),
            ("H",   -0.9883,    1.1357,   -0.2882),
            ("H",   -1.1828,   -0.1000,    0.9700),
            ("H",    0.9883,   -1.1357,    0.2882),
            ("H",    1.2169,    0.5641,    0.7421),
            ("H",    1.1828,    0.1000,   -0.9700),
        ],
    ),
    "ethanol": (
        "CCO",
        [
            ("C",   -0.8544,    0.2235,    0.2418),
            ("C",    0.3871,   -0.3585,   -0.4015),
            ("O",    1.5316,    0.3843,   -0.0073),
            ("H",   -1.7476,   -0.3278,   -0.0651),
            ("H",   -0.9749,    1.2758,   -0.0359),
            ("H",   -0.7771,    0.1892,    1.3335),
            ("H",    0.5283,   -1.4032,   -0.1080),
            ("H",    0.3103,   -0.3138,   -1.4917),
            ("H",    1.5966,    0.3305,    0.9614),
        ],
    ),
    "glycine": (
        "NCC(=O)O",
        [
            ("N",   -0.6291,    0.0032,   -1.3329),
            ("C",   -0.4797,   -0.6196,   -0.0067),
            ("C",    0.7401,   -0.0814,    0.7281),
            ("O",    1.4281,   -0.6936,    1.5297),
            ("O",    0.9806,    1.2275,    0.4831),
            ("H",   -1.5765,   -0.1516,   -1.6714),
            ("H",   -0.5186,    1.0136,   -1.2169),
            ("H",   -1.3619,   -0.4146,    0.6072),
            ("H",   -0.3656,   -1.6997,   -0.1337),
            ("H",    1.7825,    1.4161,    1.0135),
        ],
    ),
}

#: Covalent radii (Å) used only to detect bonds broken during sampling.
_COVALENT_RADII = {1: 0.31, 6: 0.76, 7: 0.71, 8: 0.66}


def molecule(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Atomic numbers ``[N]`` and starting coordinates ``[N, 3]`` (Å) of a built-in molecule."""
    if name not in MOLECULES:
        raise ValueError(f"unknown built-in molecule {name!r}; available: {', '.join(MOLECULES)}")
    atoms = MOLECULES[name][1]
    numbers = np.array([atomic_number_of(a[0]) for a in atoms], dtype=np.int64)
    coords = np.array([a[1:] for a in atoms], dtype=np.float64)
    return numbers, coords


def formula(atomic_numbers: Sequence[int]) -> str:
    """Hill formula (C, H, then alphabetical), e.g. ``C2H6O``."""
    symbols = [symbol_of(int(z)) for z in atomic_numbers if int(z) > 0]
    counts = {s: symbols.count(s) for s in set(symbols)}
    order = (["C", "H"] if "C" in counts else []) + sorted(s for s in counts if not ("C" in counts and s in "CH"))
    return "".join(s + (str(counts[s]) if counts[s] > 1 else "") for s in order)


def bonds(atomic_numbers: np.ndarray, coords: np.ndarray, scale: float = 1.25) -> np.ndarray:
    """Bonded pairs ``[P, 2]``: distance below ``scale`` times the sum of covalent radii."""
    radii = np.array([_COVALENT_RADII.get(int(z), 0.8) for z in atomic_numbers])
    d = np.linalg.norm(coords[:, None] - coords[None], axis=-1)
    i, j = np.nonzero(np.triu(d < scale * (radii[:, None] + radii[None]), k=1))
    return np.stack([i, j], axis=1)


def intact(coords: np.ndarray, reference: np.ndarray, pairs: np.ndarray, stretch: float = 1.5) -> bool:
    """Whether every bond of ``pairs`` is shorter than ``stretch`` times its reference length."""
    if len(pairs) == 0:
        return True
    d = np.linalg.norm(coords[pairs[:, 0]] - coords[pairs[:, 1]], axis=-1)
    d0 = np.linalg.norm(reference[pairs[:, 0]] - reference[pairs[:, 1]], axis=-1)
    return bool(np.all(d < stretch * d0))


def _md_constants() -> Tuple[float, float, float]:
    """Boltzmann constant (kJ/mol/K), Å/fs² per kJ/mol/Å/Da, and Å/fs per sqrt(kJ/mol/Da)."""
    from openmm import unit

    kb = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
    accel = unit.Quantity(1.0, unit.kilojoule_per_mole / unit.angstrom / unit.dalton).value_in_unit(
        unit.angstrom / unit.femtosecond**2
    )
    speed = unit.sqrt(unit.Quantity(1.0, unit.kilojoule_per_mole / unit.dalton)).value_in_unit(
        unit.angstrom / unit.femtosecond
    )
    return float(kb), float(accel), float(speed)


def sample_md(
    atomic_numbers: np.ndarray,
    coords: np.ndarray,
    count: int,
    temperatures: Sequence[float] = (300.0, 600.0, 900.0),
    seed: int = 0,
    timestep_fs: float = 0.5,
    interval: int = 40,
    equilibration: int = 200,
    friction_per_fs: float = 0.01,
    model_name: str = "ani1x",
    model: Optional["ANIModel"] = None,
) -> np.ndarray:
    """Conformations from Langevin MD on an ANI ensemble, interleaved over temperatures.

    The dynamics is a BAOAB Langevin integrator in numpy driven by the eager ANI model
    (``openmm_ani.models.load(model_name)``, float64 energies in Ha, autograd forces),
    deterministic given ``seed``.

    Parameters
    ----------
    atomic_numbers : numpy.ndarray
        ``[N]`` atomic numbers.
    coords : numpy.ndarray
        ``[N, 3]`` starting coordinates, Å.
    count : int
        Number of conformations to return.
    temperatures : sequence of float
        One trajectory per temperature (K); conformation ``k`` comes from
        trajectory ``k % len(temperatures)``.
    seed : int
        Seed of velocities and Langevin noise (numpy ``default_rng([seed, t])`` for trajectory ``t``).
    timestep_fs : float
        Time step, fs.
    interval : int
        Steps between snapshots.
    equilibration : int
        Steps before the first snapshot.
    friction_per_fs : float
        Langevin friction, 1/fs.
    model_name : str
        Registered ANI model driving the dynamics (ignored when ``model`` is given).
    model : ANIModel, optional
        An already-loaded ensemble driving the dynamics instead of ``model_name`` (e.g. a
        model being refined); use float64 for the same precision as the default.

    Returns
    -------
    numpy.ndarray
        ``[count, N, 3]`` conformations in Å, centred. Snapshots with a bond stretched
        beyond 1.5x its starting length are discarded (and logged).
    """
    import torch

    from openmm.app.element import Element
    from openmm import unit

    from openmm_ani import models
    from openmm_ani.units import HARTREE_TO_KJ_PER_MOL

    numbers = np.asarray(atomic_numbers, dtype=np.int64)
    start = np.asarray(coords, dtype=np.float64)
    if start.shape != (len(numbers), 3):
        raise ValueError(f"coords must be [{len(numbers)}, 3] Å, got {start.shape}")
    if model is None:
        model = models.load(model_name, dtype=torch.float64)
    dtype = next(iter(model.parameters())).dtype
    z_t = torch.as_tensor(numbers[None])
    masses = np.array([Element.getByAtomicNumber(int(z)).mass.value_in_unit(unit.dalton) for z in numbers])
    kb, accel, speed = _md_constants()

    def acceleration(x: np.ndarray) -> np.ndarray:
        pos = torch.tensor(x[None], dtype=dtype, requires_grad=True)
        energy = model(z_t, pos).sum()
        (grad,) = torch.autograd.grad(energy, pos)
        force = -grad[0].detach().to(torch.float64).numpy() * HARTREE_TO_KJ_PER_MOL  # kJ/mol/Å
        return force / masses[:, None] * accel  # Å/fs²

    pairs = bonds(numbers, start)
    dt = timestep_fs
    c1 = float(np.exp(-friction_per_fs * dt))
    c2 = float(np.sqrt(1.0 - c1 * c1))
    per_traj = [len(range(t, count, len(temperatures))) for t in range(len(temperatures))]
    trajectories: List[List[np.ndarray]] = []
    for t, temperature in enumerate(temperatures):
        rng = np.random.default_rng([seed, t])
        sigma = np.sqrt(kb * temperature / masses)[:, None] * speed  # Å/fs
        x = start.copy()
        v = rng.standard_normal(x.shape) * sigma
        v -= (masses[:, None] * v).sum(axis=0) / masses.sum()
        a = acceleration(x)
        snaps: List[np.ndarray] = []
        rejected = 0
        step = 0
        while len(snaps) < per_traj[t]:
            v += 0.5 * dt * a
            x += 0.5 * dt * v
            v = c1 * v + c2 * sigma * rng.standard_normal(x.shape)
            x += 0.5 * dt * v
            a = acceleration(x)
            v += 0.5 * dt * a
            step += 1
            if step >= equilibration and (step - equilibration) % interval == 0:
                if intact(x, start, pairs):
                    snaps.append(x - x.mean(axis=0))
                else:
                    rejected += 1
                    if rejected > 10 * count:
                        raise RuntimeError(f"MD at {temperature} K keeps breaking bonds; lower the temperature")
        if rejected:
            logger.info("discarded %d snapshots with broken bonds at %.0f K", rejected, temperature)
        trajectories.append(snaps)
    out = [trajectories[k % len(temperatures)][k // len(temperatures)] for k in range(count)]
    return np.stack(out)
