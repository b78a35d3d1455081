"""The resumable label generator that wrote ``training/resources/chno_labels.h5``.

:func:`generate` labels conformations with the levels of :mod:`.levels`, writing the
release-layout HDF5 file and its provenance JSON (``<output>.json``) atomically after every
conformation. A rerun resumes: labels already present (finite) are not recomputed. It resumes
only what matches: the conformations and the level-of-theory settings stored in the
provenance must equal the requested ones, otherwise it stops with an error listing the
differences.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.files import write_text
from openmm_ani.resume import raise_if_different, settings_differences

from .levels import (
    CBS_KEY, CC_DZ_KEY, CC_TZ_KEY, DFT_KEY, HF_DZ_KEY, HF_TZ_KEY, CCSettings, DFTSettings, cbs_two_point,
    ccsd_t_energy, dft_energy_forces,
)

logger = logging.getLogger(__name__)

#: Label arrays (energy keys) written per molecule group.
ENERGY_KEYS = (f"{DFT_KEY}.energy", f"{HF_DZ_KEY}.energy", f"{CC_DZ_KEY}.energy", f"{HF_TZ_KEY}.energy",
               f"{CC_TZ_KEY}.energy", f"{CBS_KEY}.energy")

Groups = Dict[str, Dict[str, np.ndarray]]


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
    from ..sampling import formula

    base = formula(job.atomic_numbers)
    name, k = base, 2
    while name in taken and taken[name] != job.name:
        name, k = f"{base}_{k}", k + 1
    return name


def provenance_path(out_path: str) -> str:
    """The provenance JSON written beside a label file."""
    return os.path.splitext(out_path)[0] + ".json"


def _write_checkpoint(out_path: str, groups: Mapping[str, Dict[str, np.ndarray]], meta: Dict[str, Any]) -> None:
    from ..data import write_h5

    write_h5(out_path, groups)
    write_text(provenance_path(out_path), json.dumps(meta, indent=1, sort_keys=True))


def load_existing(out_path: str) -> Tuple[Groups, Dict[str, Any]]:
    """The groups and provenance of an earlier run's output (empty when there is none).

    Raises
    ------
    ValueError
        If the file or its provenance exists but cannot be read.
    """
    import h5py

    groups: Groups = {}
    meta: Dict[str, Any] = {}
    if os.path.exists(out_path):
        try:
            with h5py.File(out_path, "r") as h5:
                for name in h5:
                    groups[name] = {key: np.asarray(h5[name][key][()]) for key in h5[name]}
        except OSError as err:
            raise ValueError(f"{out_path}: existing checkpoint is not readable ({err}); remove it to restart") from None
    if os.path.exists(provenance_path(out_path)):
        try:
            with open(provenance_path(out_path)) as fh:
                meta = json.load(fh)
        except json.JSONDecodeError as err:
            raise ValueError(f"{provenance_path(out_path)}: not valid JSON ({err}); remove it to restart") from None
    return groups, meta


#: How a difference of the stored label settings reads.
_STORED_REQUESTED = "{key}: stored {old}, requested {new}"


def _settings_record(dft: DFTSettings, ccs: CCSettings) -> Dict[str, Any]:
    return {
        "dft": {**asdict(dft), "key": DFT_KEY, "functional": "wB97X (Chai & Head-Gordon 2008, libxc 464)"},
        "cc": {**asdict(ccs), "keys": [CC_DZ_KEY, CC_TZ_KEY, CBS_KEY],
               "cbs": "HF/cc-pVTZ + (27 E_corr(TZ) - 8 E_corr(DZ))/19 (Helgaker X^-3, CCSD(T) correlation)"},
    }


def check_resumable(out_path: str, meta: Mapping[str, Any], dft: DFTSettings, ccs: CCSettings) -> None:
    """Raise ``ValueError`` if stored labels were made with other level-of-theory settings.

    The message lists the differing settings and says how to start afresh.
    """
    requested = _settings_record(dft, ccs)
    differences = []
    for part in ("dft", "cc"):
        stored = meta.get(part)
        if isinstance(stored, Mapping):
            differences += settings_differences(stored, requested[part], prefix=f"{part}.", template=_STORED_REQUESTED,
                                                common_keys_only=True)
    raise_if_different(differences, f"{out_path} holds labels made with other settings",
                       "use a new output file, or remove it to start afresh")


def check_sampling(out_path: str, meta: Mapping[str, Any], sampling: Optional[Mapping[str, Any]]) -> None:
    """Raise ``ValueError`` if stored conformations were sampled with other settings or from other inputs.

    ``sampling`` holds what determines the conformations (inputs by SHA-256, MD seed,
    temperatures, conformer counts, plan scale); keys absent from the stored provenance (an
    earlier version's file) are not compared.
    """
    stored = meta.get("sampling")
    if not sampling or not isinstance(stored, Mapping):
        return
    raise_if_different(settings_differences(stored, sampling, prefix="sampling.", template=_STORED_REQUESTED,
                                            common_keys_only=True),
                       f"{out_path} holds conformations sampled with other settings or inputs",
                       "use a new output file, or remove it to start afresh")


def _attach_jobs(out_path: str, jobs: Sequence[MoleculeJob], groups: Groups, meta: Mapping[str, Any]) -> Dict[str, str]:
    """Give every job its group (new, or the stored one it resumes); returns job name -> group."""
    names: Dict[str, str] = {g: str(meta.get("molecules", {}).get(g, {}).get("name", "")) for g in groups}
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
                raise ValueError(
                    f"{out_path}: group {g!r} ({job.name}) holds other conformations than requested; "
                    "use a new output file, or remove it to start afresh"
                )
            # labels refer to the stored conformations: resume on those
            job.coordinates = np.asarray(stored["coordinates"], dtype=np.float64)
        else:
            groups[g] = {"atomic_numbers": job.atomic_numbers.astype(np.int64), "coordinates": job.coordinates}
            groups[g].update(_empty_labels(c, n))
    return gname_of


def _label_counts(groups: Groups) -> Dict[str, int]:
    """Finite labels of each key over all groups."""
    counts: Dict[str, int] = {}
    for arrays in groups.values():
        for key, arr in arrays.items():
            if key in ("atomic_numbers", "coordinates"):
                continue
            finite = np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
            counts[key] = counts.get(key, 0) + int(finite.sum())
    return counts


class _Labeler:
    """Computes missing labels of one molecule, reusing its last SCF densities as guesses."""

    def __init__(self, dft: DFTSettings, ccs: CCSettings, timed: Callable[[str, float], None]) -> None:
        self.dft = dft
        self.ccs = ccs
        self.timed = timed
        self.densities: Dict[Tuple[str, str], np.ndarray] = {}

    def dft_label(self, job: MoleculeJob, arrays: Dict[str, np.ndarray], k: int) -> bool:
        if np.isfinite(arrays[f"{DFT_KEY}.energy"][k]):
            return False
        t0 = time.time()
        e, f, dm = dft_energy_forces(job.atomic_numbers, job.coordinates[k], self.dft, self.densities.get((job.name, "dft")))
        self.timed(f"{DFT_KEY} energy+forces ({job.name})", time.time() - t0)
        self.timed(f"{DFT_KEY} energy+forces", time.time() - t0)
        self.densities[(job.name, "dft")] = dm
        arrays[f"{DFT_KEY}.energy"][k] = e
        arrays[f"{DFT_KEY}.forces"][k] = f
        return True

    def cc_label(self, job: MoleculeJob, arrays: Dict[str, np.ndarray], j: int, triple_zeta: bool) -> bool:
        key = CBS_KEY if triple_zeta else CC_DZ_KEY
        if np.isfinite(arrays[f"{key}.energy"][j]):
            return False
        basis, kind, timing = (self.ccs.basis_tz, "tz", CC_TZ_KEY) if triple_zeta else (self.ccs.basis_dz, "dz", CC_DZ_KEY)
        t0 = time.time()
        result, dm = ccsd_t_energy(job.atomic_numbers, job.coordinates[j], basis, self.ccs, self.densities.get((job.name, kind)))
        self.timed(f"{timing} ({job.name})", time.time() - t0)
        self.timed(timing, time.time() - t0)
        self.densities[(job.name, kind)] = dm
        if triple_zeta:
            corr_dz = arrays[f"{CC_DZ_KEY}.energy"][j] - arrays[f"{HF_DZ_KEY}.energy"][j]
            arrays[f"{HF_TZ_KEY}.energy"][j] = result.hf
            arrays[f"{CC_TZ_KEY}.energy"][j] = result.total
            arrays[f"{CBS_KEY}.energy"][j] = cbs_two_point(result.hf, corr_dz, result.correlation)
        else:
            arrays[f"{HF_DZ_KEY}.energy"][j] = result.hf
            arrays[f"{CC_DZ_KEY}.energy"][j] = result.total
        return True

    def round(self, job: MoleculeJob, arrays: Dict[str, np.ndarray], k: int) -> bool:
        """DFT for conformation ``k``; CC work brought up to the same fraction of its plan.

        After DFT conformation ``k`` the first ``ceil((k + 1) * n_cc / n_conf)`` conformations
        have CC labels, so a run stopped at any checkpoint keeps the planned proportions.
        """
        done = self.dft_label(job, arrays, k)
        n_conf = job.coordinates.shape[0]
        cc_upto = min(job.n_cc, -(-(k + 1) * job.n_cc // n_conf))
        cbs_upto = min(job.n_cbs, -(-(k + 1) * job.n_cbs // n_conf))
        for j in range(cc_upto):
            done = self.cc_label(job, arrays, j, triple_zeta=False) or done
        for j in range(cbs_upto):
            done = self.cc_label(job, arrays, j, triple_zeta=True) or done
        return done


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

    Raises
    ------
    ValueError
        If ``out_path`` holds labels of other conformations or other settings (level of theory,
        or the sampling settings in ``extra_meta["sampling"]``).
    """
    import pyscf

    groups, meta = load_existing(out_path)
    check_resumable(out_path, meta, dft, ccs)
    check_sampling(out_path, meta, (extra_meta or {}).get("sampling"))
    gname_of = _attach_jobs(out_path, jobs, groups, meta)
    timings: Dict[str, Dict[str, float]] = meta.get("timings", {})
    meta.update(dict(extra_meta or {}))
    meta.update(_settings_record(dft, ccs))
    meta.update(
        {
            "pyscf_version": pyscf.__version__,
            "numpy_version": np.__version__,
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

    def checkpoint(complete: bool) -> None:
        meta["counts"] = _label_counts(groups)
        meta["timings"] = {k: {**v, "mean_seconds": v["seconds"] / max(v["count"], 1)} for k, v in timings.items()}
        meta["complete"] = complete
        _write_checkpoint(out_path, groups, meta)

    checkpoint(False)
    labeler = _Labeler(dft, ccs, timed)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=sum(j.coordinates.shape[0] for j in jobs), desc="labels", file=sys.stderr)
    stopped = False
    for k in range(max(j.coordinates.shape[0] for j in jobs)):
        for job in jobs:
            if k >= job.coordinates.shape[0]:
                continue
            if deadline is not None and time.time() > deadline:
                stopped = True
                break
            if labeler.round(job, groups[gname_of[job.name]], k):
                checkpoint(False)
            if bar is not None:
                bar.update(1)
        if stopped:
            break
    if bar is not None:
        bar.close()
    checkpoint(not stopped)
    if stopped:
        logger.warning("deadline reached: stopped at a consistent checkpoint; rerun to resume")
    return meta
