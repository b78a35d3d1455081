"""Quantum-chemistry labels with PySCF: ωB97X/6-31G* energies and forces, CCSD(T) energies.

Levels of theory (the keys follow the ANI-1x/ANI-1ccx release names):

* ``wb97x_dz``: ωB97X (Chai & Head-Gordon 2008; libxc ``HYB_GGA_XC_WB97X``, PySCF
  ``xc="wb97x"`` -- not ωB97X-D or ωB97X-V) with the 6-31G* basis using Cartesian
  d functions (6d, as Gaussian's 6-31G* that ANI-1x used); PySCF grid level 3;
  SCF converged to 1e-10 Ha; gradients include the grid-weight response. Energies in Ha,
  forces ``-dE/dx`` in Ha/Å.
* ``ccsd(t)_dz``: RHF + CCSD(T) with cc-pVDZ (spherical), frozen core (1s of Li-Ne).
* ``ccsd(t)_tz``: the same with cc-pVTZ.
* ``ccsd(t)_cbs``: two-point DZ/TZ extrapolation: HF at cc-pVTZ (not extrapolated) plus the
  CCSD(T) correlation energy extrapolated with Helgaker's X^-3 form,
  ``E_corr(CBS) = (3^3 E_corr(TZ) - 2^3 E_corr(DZ)) / (3^3 - 2^3)``.
  (ANI-1ccx's CCSD(T)*/CBS is a different, DPLNO-based composite; this is the canonical
  small-molecule analogue.)

Also provided: the ``labels`` subcommand of ``openmm-ani train`` (:func:`register`) and the
resumable generator (:func:`generate`) that wrote ``training/resources/chno_labels.h5``.
PySCF and h5py are imported inside functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.units import BOHR_TO_ANGSTROM

logger = logging.getLogger(__name__)

#: Release-layout key prefixes of the levels of theory made here.
DFT_KEY = "wb97x_dz"
CC_DZ_KEY = "ccsd(t)_dz"
CC_TZ_KEY = "ccsd(t)_tz"
CBS_KEY = "ccsd(t)_cbs"
HF_DZ_KEY = "hf_dz"
HF_TZ_KEY = "hf_tz"

#: Cardinal numbers of cc-pVDZ and cc-pVTZ in the two-point extrapolation.
CARDINAL_DZ = 2
CARDINAL_TZ = 3


@dataclass(frozen=True)
class DFTSettings:
    """Settings of the ωB97X/6-31G* labels (ANI-1x's level of theory)."""

    xc: str = "wb97x"
    basis: str = "6-31g*"
    cartesian: bool = True
    grid_level: int = 3
    conv_tol: float = 1e-10
    max_cycle: int = 100
    #: include the derivative of the integration grid weights, so that forces are the exact
    #: derivative of the (grid-integrated) energy (otherwise errors of ~1e-4 Ha/bohr)
    grid_response: bool = True


@dataclass(frozen=True)
class CCSettings:
    """Settings of the CCSD(T) labels."""

    basis_dz: str = "cc-pvdz"
    basis_tz: str = "cc-pvtz"
    frozen_core: bool = True
    cartesian: bool = False
    conv_tol: float = 1e-10
    cc_conv_tol: float = 1e-8


@dataclass
class CCResult:
    """CCSD(T) energy components, Ha."""

    hf: float
    ccsd_correlation: float
    triples: float

    @property
    def correlation(self) -> float:
        """CCSD(T) correlation energy, Ha."""
        return self.ccsd_correlation + self.triples

    @property
    def total(self) -> float:
        """CCSD(T) total energy, Ha."""
        return self.hf + self.correlation


def build_mol(atomic_numbers: Sequence[int], coordinates: np.ndarray, basis: str, cartesian: bool) -> Any:
    """A neutral closed-shell ``pyscf.gto.Mole``; coordinates ``[N, 3]`` in Å.

    Raises
    ------
    ValueError
        An odd electron count (only closed-shell singlets are labelled) or bad shapes.
    """
    from pyscf import gto

    z = [int(a) for a in atomic_numbers]
    x = np.asarray(coordinates, dtype=np.float64)
    if x.shape != (len(z), 3):
        raise ValueError(f"coordinates must be [{len(z)}, 3] Å, got {x.shape}")
    if any(a <= 0 for a in z):
        raise ValueError(f"atomic numbers must be positive, got {z}")
    if sum(z) % 2:
        raise ValueError(f"odd number of electrons ({sum(z)}): only neutral closed-shell molecules are labelled")
    mol = gto.Mole()
    mol.atom = [(a, tuple(p)) for a, p in zip(z, x)]
    mol.unit = "Angstrom"
    mol.basis = basis
    mol.cart = cartesian
    mol.charge = 0
    mol.spin = 0
    mol.verbose = 0
    mol.build()
    return mol


def frozen_core_orbitals(atomic_numbers: Sequence[int]) -> int:
    """Number of frozen core orbitals: one (1s) per Li-Ne atom, none for H/He."""
    n = 0
    for z in atomic_numbers:
        if z > 10:
            raise ValueError(f"frozen core is defined here for H-Ne only, got atomic number {z}")
        n += 1 if z > 2 else 0
    return n


def dft_energy_forces(
    atomic_numbers: Sequence[int],
    coordinates: np.ndarray,
    settings: DFTSettings = DFTSettings(),
    dm0: Optional[np.ndarray] = None,
) -> Tuple[float, np.ndarray, np.ndarray]:
    """ωB97X/6-31G* energy and forces of one conformation.

    Parameters
    ----------
    atomic_numbers : sequence of int
        ``[N]``.
    coordinates : numpy.ndarray
        ``[N, 3]`` Å.
    settings : DFTSettings
        Functional, basis and convergence.
    dm0 : numpy.ndarray, optional
        Initial density matrix (e.g. of a neighbouring conformation).

    Returns
    -------
    energy : float
        Ha.
    forces : numpy.ndarray
        ``[N, 3]`` Ha/Å (``-dE/dx``).
    density : numpy.ndarray
        Converged density matrix (AO basis), for reuse as ``dm0``.

    Raises
    ------
    RuntimeError
        If the SCF does not converge.
    """
    from pyscf import dft

    mol = build_mol(atomic_numbers, coordinates, settings.basis, settings.cartesian)
    mf = dft.RKS(mol)
    mf.xc = settings.xc
    mf.grids.level = settings.grid_level
    mf.conv_tol = settings.conv_tol
    mf.max_cycle = settings.max_cycle
    energy = mf.kernel(dm0=dm0 if dm0 is not None and dm0.shape == (mol.nao, mol.nao) else None)
    if not mf.converged:
        raise RuntimeError(f"ωB97X SCF did not converge ({settings.max_cycle} cycles)")
    grad = mf.nuc_grad_method()
    grad.grid_response = settings.grid_response
    gradient = grad.kernel()  # Ha/bohr
    forces = -np.asarray(gradient, dtype=np.float64) / BOHR_TO_ANGSTROM
    return float(energy), forces, mf.make_rdm1()


def ccsd_t_energy(
    atomic_numbers: Sequence[int],
    coordinates: np.ndarray,
    basis: str,
    settings: CCSettings = CCSettings(),
    dm0: Optional[np.ndarray] = None,
) -> Tuple[CCResult, np.ndarray]:
    """RHF + CCSD(T) energy (frozen core) of one conformation in ``basis``.

    Parameters
    ----------
    atomic_numbers : sequence of int
        ``[N]``.
    coordinates : numpy.ndarray
        ``[N, 3]`` Å.
    basis : str
        Basis set name, e.g. ``"cc-pvdz"``.
    settings : CCSettings
        Frozen core and convergence.
    dm0 : numpy.ndarray, optional
        Initial RHF density matrix.

    Returns
    -------
    result : CCResult
        HF, CCSD correlation and (T) energies, Ha.
    density : numpy.ndarray
        RHF density matrix.
    """
    from pyscf import cc, scf

    mol = build_mol(atomic_numbers, coordinates, basis, settings.cartesian)
    hf = scf.RHF(mol)
    hf.conv_tol = settings.conv_tol
    hf.kernel(dm0=dm0 if dm0 is not None and dm0.shape == (mol.nao, mol.nao) else None)
    if not hf.converged:
        raise RuntimeError(f"RHF/{basis} did not converge")
    frozen = frozen_core_orbitals(atomic_numbers) if settings.frozen_core else 0
    ccsd = cc.CCSD(hf, frozen=frozen if frozen else None)
    ccsd.conv_tol = settings.cc_conv_tol
    ccsd.kernel()
    if not ccsd.converged:
        raise RuntimeError(f"CCSD/{basis} did not converge")
    triples = ccsd.ccsd_t()
    return CCResult(float(hf.e_tot), float(ccsd.e_corr), float(triples)), hf.make_rdm1()


def cbs_two_point(hf_tz: float, correlation_dz: float, correlation_tz: float) -> float:
    """CBS estimate: HF/TZ plus the X^-3 (Helgaker) DZ/TZ extrapolated correlation energy, Ha."""
    x, y = CARDINAL_DZ**3, CARDINAL_TZ**3
    return hf_tz + (y * correlation_tz - x * correlation_dz) / (y - x)


# ----------------------------------------------------------------------------------------------------------------
# The resumable generator
# ----------------------------------------------------------------------------------------------------------------

#: Built-in plan: molecule -> (DFT conformations, CCSD(T)/cc-pVDZ subset, CBS subset).
#: CC labels are computed for the first conformations of each molecule (their order is
#: interleaved over MD temperatures, so every prefix is a fair sample); cc-pVTZ only for
#: molecules of at most four atoms plus methane (a TZ calculation of methanol costs ~60 s).
BUILTIN_PLAN: Dict[str, Tuple[int, int, int]] = {
    "water": (28, 18, 8),
    "methane": (28, 18, 8),
    "ammonia": (28, 18, 8),
    "hydrogen_cyanide": (28, 18, 8),
    "formaldehyde": (28, 18, 8),
    "acetylene": (28, 18, 8),
    "methanol": (28, 18, 0),
    "formic_acid": (28, 18, 0),
    "ethylene": (28, 18, 0),
    "methylamine": (28, 18, 0),
    "formamide": (28, 18, 0),
    "acetonitrile": (28, 18, 0),
    "acetaldehyde": (28, 18, 0),
    "ethane": (28, 18, 0),
    "ethanol": (28, 18, 0),
}

#: Label arrays (energy keys) written per molecule group.
ENERGY_KEYS = (f"{DFT_KEY}.energy", f"{HF_DZ_KEY}.energy", f"{CC_DZ_KEY}.energy", f"{HF_TZ_KEY}.energy",
               f"{CC_TZ_KEY}.energy", f"{CBS_KEY}.energy")


@dataclass
class MoleculeJob:
    """One molecule of a generation run."""

    name: str
    atomic_numbers: np.ndarray  # [N]
    coordinates: np.ndarray  # [C, N, 3] Å
    n_cc: int
    n_cbs: int
    smiles: str = ""


def _empty_labels(c: int, n: int) -> Dict[str, np.ndarray]:
    out = {key: np.full(c, np.nan) for key in ENERGY_KEYS}
    out[f"{DFT_KEY}.forces"] = np.full((c, n, 3), np.nan)
    return out


def _group_name(job: MoleculeJob, taken: Mapping[str, str]) -> str:
    from .sampling import formula

    base = formula(job.atomic_numbers)
    name, k = base, 2
    while name in taken and taken[name] != job.name:
        name, k = f"{base}_{k}", k + 1
    return name


def _write_checkpoint(out_path: str, groups: Mapping[str, Dict[str, np.ndarray]], meta: Dict[str, Any]) -> None:
    from .data import write_h5

    write_h5(out_path, groups)
    tmp = f"{_provenance_path(out_path)}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump(meta, fh, indent=1, sort_keys=True)
    os.replace(tmp, _provenance_path(out_path))


def _provenance_path(out_path: str) -> str:
    return os.path.splitext(out_path)[0] + ".json"


def _load_existing(out_path: str) -> Tuple[Dict[str, Dict[str, np.ndarray]], Dict[str, Any]]:
    import h5py

    groups: Dict[str, Dict[str, np.ndarray]] = {}
    meta: Dict[str, Any] = {}
    if os.path.exists(out_path):
        try:
            with h5py.File(out_path, "r") as h5:
                for name in h5:
                    groups[name] = {key: np.asarray(h5[name][key][()]) for key in h5[name]}
        except OSError as err:
            raise ValueError(f"{out_path}: existing checkpoint is not readable ({err}); remove it to restart") from err
    if os.path.exists(_provenance_path(out_path)):
        with open(_provenance_path(out_path)) as fh:
            meta = json.load(fh)
    return groups, meta


def generate(
    out_path: str,
    jobs: Sequence[MoleculeJob],
    dft: DFTSettings = DFTSettings(),
    ccs: CCSettings = CCSettings(),
    deadline: Optional[float] = None,
    extra_meta: Optional[Mapping[str, Any]] = None,
    progress: bool = True,
) -> Dict[str, Any]:
    """Label conformations, checkpointing (atomically) after every conformation; resumes.

    Work is done in rounds: round ``k`` labels conformation ``k`` of every molecule with
    DFT and brings the CCSD(T)/cc-pVDZ (first ``n_cc``) and cc-pVTZ/CBS (first ``n_cbs``)
    labels up to the same fraction of their plan, so a run stopped at any checkpoint has a
    balanced, valid data set with the planned proportions.
    Labels already present (finite) in ``out_path`` are not recomputed.

    Parameters
    ----------
    out_path : str
        Release-layout HDF5 output; provenance JSON is written beside it (``.json``).
    jobs : sequence of MoleculeJob
        Molecules with their conformations (Å).
    dft, ccs : DFTSettings, CCSettings
        Level-of-theory settings.
    deadline : float, optional
        ``time.time()`` after which no new conformation is started.
    extra_meta : mapping, optional
        Added to the provenance (e.g. sampling settings and seeds).
    progress : bool
        Show a tqdm progress bar on stderr.

    Returns
    -------
    dict
        The provenance written to the JSON file.
    """
    import pyscf

    groups, meta = _load_existing(out_path)
    names: Dict[str, str] = {g: str(meta.get("molecules", {}).get(g, {}).get("name", "")) for g in groups}
    timings: Dict[str, Dict[str, float]] = meta.get("timings", {})
    gname_of: Dict[str, str] = {}
    for job in jobs:
        g = next((g for g, n in names.items() if n == job.name), None) or _group_name(job, names)
        names[g] = job.name
        gname_of[job.name] = g
        c, n = job.coordinates.shape[:2]
        if g in groups:
            stored = groups[g]
            if stored["coordinates"].shape != job.coordinates.shape or not np.array_equal(
                stored["atomic_numbers"], job.atomic_numbers
            ):
                raise ValueError(f"{out_path}: group {g!r} ({job.name}) does not match the requested conformations")
            # labels refer to the stored conformations: resume on those
            job.coordinates = np.asarray(stored["coordinates"], dtype=np.float64)
        else:
            groups[g] = {"atomic_numbers": job.atomic_numbers.astype(np.int64), "coordinates": job.coordinates}
            groups[g].update(_empty_labels(c, n))
    meta.update(dict(extra_meta or {}))
    meta.update(
        {
            "pyscf_version": pyscf.__version__,
            "numpy_version": np.__version__,
            "dft": {**asdict(dft), "key": DFT_KEY, "functional": "wB97X (Chai & Head-Gordon 2008, libxc 464)"},
            "cc": {**asdict(ccs), "keys": [CC_DZ_KEY, CC_TZ_KEY, CBS_KEY],
                   "cbs": "HF/cc-pVTZ + (27 E_corr(TZ) - 8 E_corr(DZ))/19 (Helgaker X^-3, CCSD(T) correlation)"},
            "units": {"energy": "hartree", "forces": "hartree/angstrom", "coordinates": "angstrom"},
            "molecules": {
                gname_of[j.name]: {"name": j.name, "smiles": j.smiles, "conformations": int(j.coordinates.shape[0]),
                                   "ccsd(t)_dz": j.n_cc, "ccsd(t)_cbs": j.n_cbs}
                for j in jobs
            },
        }
    )

    def timed(kind: str, seconds: float) -> None:
        t = timings.setdefault(kind, {"count": 0, "seconds": 0.0})
        t["count"] += 1
        t["seconds"] += seconds

    def finish_meta(complete: bool) -> None:
        counts: Dict[str, int] = {}
        for arrays in groups.values():
            for key, arr in arrays.items():
                if key in ("atomic_numbers", "coordinates"):
                    continue
                finite = np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
                counts[key] = counts.get(key, 0) + int(finite.sum())
        meta["counts"] = counts
        meta["timings"] = {
            k: {**v, "mean_seconds": v["seconds"] / max(v["count"], 1)} for k, v in timings.items()
        }
        meta["complete"] = complete

    finish_meta(False)
    _write_checkpoint(out_path, groups, meta)
    total = sum(j.coordinates.shape[0] for j in jobs)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, desc="labels", file=sys.stderr)
    densities: Dict[Tuple[str, str], np.ndarray] = {}
    rounds = max(j.coordinates.shape[0] for j in jobs)
    stopped = False
    for k in range(rounds):
        for job in jobs:
            if k >= job.coordinates.shape[0]:
                continue
            if deadline is not None and time.time() > deadline:
                stopped = True
                break
            arrays = groups[gname_of[job.name]]
            z, x = job.atomic_numbers, job.coordinates[k]
            done_any = False
            if not np.isfinite(arrays[f"{DFT_KEY}.energy"][k]):
                t0 = time.time()
                e, f, dm = dft_energy_forces(z, x, dft, densities.get((job.name, "dft")))
                timed(f"{DFT_KEY} energy+forces ({job.name})", time.time() - t0)
                timed(f"{DFT_KEY} energy+forces", time.time() - t0)
                densities[(job.name, "dft")] = dm
                arrays[f"{DFT_KEY}.energy"][k] = e
                arrays[f"{DFT_KEY}.forces"][k] = f
                done_any = True
            n_conf = job.coordinates.shape[0]
            # CC work keeps pace with the DFT rounds: after DFT conformation k, the first
            # ceil((k + 1) * n_cc / n_conf) conformations have CC labels, so a run stopped
            # at any checkpoint keeps the planned proportions between the sets
            cc_upto = min(job.n_cc, -(-(k + 1) * job.n_cc // n_conf))
            cbs_upto = min(job.n_cbs, -(-(k + 1) * job.n_cbs // n_conf))
            for j in range(cc_upto):
                if np.isfinite(arrays[f"{CC_DZ_KEY}.energy"][j]):
                    continue
                t0 = time.time()
                r, dm = ccsd_t_energy(z, job.coordinates[j], ccs.basis_dz, ccs, densities.get((job.name, "dz")))
                timed(f"{CC_DZ_KEY} ({job.name})", time.time() - t0)
                timed(CC_DZ_KEY, time.time() - t0)
                densities[(job.name, "dz")] = dm
                arrays[f"{HF_DZ_KEY}.energy"][j] = r.hf
                arrays[f"{CC_DZ_KEY}.energy"][j] = r.total
                done_any = True
            for j in range(cbs_upto):
                if np.isfinite(arrays[f"{CBS_KEY}.energy"][j]):
                    continue
                t0 = time.time()
                r, dm = ccsd_t_energy(z, job.coordinates[j], ccs.basis_tz, ccs, densities.get((job.name, "tz")))
                timed(f"{CC_TZ_KEY} ({job.name})", time.time() - t0)
                timed(CC_TZ_KEY, time.time() - t0)
                densities[(job.name, "tz")] = dm
                corr_dz = arrays[f"{CC_DZ_KEY}.energy"][j] - arrays[f"{HF_DZ_KEY}.energy"][j]
                arrays[f"{HF_TZ_KEY}.energy"][j] = r.hf
                arrays[f"{CC_TZ_KEY}.energy"][j] = r.total
                arrays[f"{CBS_KEY}.energy"][j] = cbs_two_point(r.hf, corr_dz, r.correlation)
                done_any = True
            if done_any:
                finish_meta(False)
                _write_checkpoint(out_path, groups, meta)
            if bar is not None:
                bar.update(1)
        if stopped:
            break
    if bar is not None:
        bar.close()
    finish_meta(not stopped)
    _write_checkpoint(out_path, groups, meta)
    if stopped:
        logger.warning("deadline reached: stopped at a consistent checkpoint; rerun to resume")
    return meta


# ----------------------------------------------------------------------------------------------------------------
# Inputs and the `labels` subcommand
# ----------------------------------------------------------------------------------------------------------------


def read_structure(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Atomic numbers ``[N]`` and conformations ``[F, N, 3]`` (Å) from an XYZ (all frames) or PDB file."""
    from openmm_ani.species import atomic_number_of

    if not os.path.exists(path):
        raise FileNotFoundError(f"structure file not found: {path}")
    if path.lower().endswith(".pdb"):
        from openmm import unit
        from openmm.app import PDBFile

        pdb = PDBFile(path)
        z = []
        for atom in pdb.topology.atoms():
            if atom.element is None:
                raise ValueError(f"{path}: atom {atom.index} ({atom.name}) has no element")
            z.append(atom.element.atomic_number)
        frames = [
            np.asarray(pdb.getPositions(asNumpy=True, frame=i).value_in_unit(unit.angstrom))
            for i in range(pdb.getNumFrames())
        ]
        return np.array(z, dtype=np.int64), np.stack(frames)
    with open(path) as fh:
        lines = [ln.rstrip("\n") for ln in fh]
    frames, z_ref = [], None
    i = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
        except ValueError as err:
            raise ValueError(f"{path}: line {i + 1}: expected an atom count, got {lines[i]!r}") from err
        block = lines[i + 2 : i + 2 + n]
        if len(block) != n:
            raise ValueError(f"{path}: frame at line {i + 1} has {len(block)} of {n} atoms")
        try:
            z = [atomic_number_of(b.split()[0].capitalize()) for b in block]
            x = [[float(v) for v in b.split()[1:4]] for b in block]
        except (ValueError, IndexError) as err:
            raise ValueError(f"{path}: frame at line {i + 1}: cannot parse atoms ({err})") from err
        if z_ref is not None and z != z_ref:
            raise ValueError(f"{path}: frame at line {i + 1} has different atoms than the first frame")
        z_ref = z
        frames.append(x)
        i += 2 + n
    if not frames:
        raise ValueError(f"{path}: no XYZ frame found")
    return np.array(z_ref, dtype=np.int64), np.array(frames, dtype=np.float64)


def builtin_jobs(
    plan: Mapping[str, Tuple[int, int, int]] = BUILTIN_PLAN,
    seed: int = 2024,
    temperatures: Sequence[float] = (300.0, 600.0, 900.0),
    scale: float = 1.0,
    existing: Optional[str] = None,
) -> List[MoleculeJob]:
    """Jobs of the built-in molecules: conformations by ANI-1x MD (seed ``seed + 10 * molecule index``).

    Conformations already stored in ``existing`` (a checkpoint of an earlier run) are reused
    instead of sampled again.
    """
    from .sampling import MOLECULES, molecule, sample_md

    stored: Dict[str, np.ndarray] = {}
    if existing is not None and os.path.exists(existing):
        groups, meta = _load_existing(existing)
        for g, info in meta.get("molecules", {}).items():
            if g in groups:
                stored[info["name"]] = groups[g]["coordinates"]
    jobs = []
    for i, (name, (n_dft, n_cc, n_cbs)) in enumerate(plan.items()):
        n_dft, n_cc, n_cbs = (max(1, int(round(v * scale))) if v else 0 for v in (n_dft, n_cc, n_cbs))
        z, x0 = molecule(name)
        if name in stored and stored[name].shape[0] == n_dft:
            confs = stored[name]
        else:
            logger.info("sampling %d conformations of %s", n_dft, name)
            confs = sample_md(z, x0, n_dft, temperatures=temperatures, seed=seed + 10 * i)
        jobs.append(MoleculeJob(name, z, confs, min(n_cc, n_dft), min(n_cbs, n_cc), MOLECULES[name][0]))
    return jobs


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="*", help="XYZ or PDB files (default: the built-in CHNO molecules)")
    parser.add_argument("-o", "--output", required=True, help="output HDF5 file (release layout); resumes if present")
    parser.add_argument("--conformers", type=int, default=None,
                        help="ANI-1x MD conformers per input (default: label the given frames as they are)")
    parser.add_argument("--cc", type=int, default=0, help="CCSD(T)/cc-pVDZ labels for the first N conformations")
    parser.add_argument("--cbs", type=int, default=0, help="cc-pVTZ + DZ/TZ CBS labels for the first N")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the built-in plan's counts")
    parser.add_argument("--seed", type=int, default=2024, help="MD seed")
    parser.add_argument("--temperatures", type=float, nargs="+", default=[300.0, 600.0, 900.0], help="MD K")
    parser.add_argument("--hours", type=float, default=None, help="stop (resumably) after this many hours")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_labels(args: argparse.Namespace) -> int:
    """Run the ``labels`` subcommand; returns the exit status."""
    from .sampling import sample_md

    deadline = None if args.hours is None else time.time() + 3600.0 * args.hours
    sampling = {"method": "BAOAB Langevin MD (0.5 fs, friction 0.01/fs, 200 steps equilibration, snapshot every "
                          "40 steps) on the ANI-1x ensemble (float64), trajectories at the given temperatures "
                          "interleaved",
                "temperatures_K": list(args.temperatures), "seed": args.seed}
    if args.inputs:
        jobs = []
        for i, path in enumerate(args.inputs):
            z, frames = read_structure(path)
            if args.conformers:
                frames = sample_md(z, frames[0], args.conformers, args.temperatures, seed=args.seed + 10 * i)
            name = os.path.splitext(os.path.basename(path))[0]
            jobs.append(MoleculeJob(name, z, frames, min(args.cc, len(frames)), min(args.cbs, args.cc, len(frames))))
    else:
        jobs = builtin_jobs(seed=args.seed, temperatures=args.temperatures, scale=args.scale, existing=args.output)
    meta = generate(args.output, jobs, deadline=deadline, extra_meta={"sampling": sampling},
                    progress=not args.no_progress)
    sys.stdout.write(json.dumps(meta["counts"], indent=1, sort_keys=True) + "\n")
    return 0


def register(train_subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``labels`` subcommand (PySCF ωB97X/6-31G* + CCSD(T) labels) to ``openmm-ani train``."""
    parser = train_subparsers.add_parser(
        "labels",
        help="generate ωB97X/6-31G* and CCSD(T) labels with PySCF",
        description="Label conformations (given XYZ/PDB frames, ANI-1x MD conformers of them, or the built-in "
        "CHNO set) with ωB97X/6-31G* energies+forces and CCSD(T) energies; writes the release layout.",
    )
    _add_arguments(parser)
    parser.set_defaults(func=run_labels)
    return parser
