"""Quantum-chemistry labels with PySCF (the data behind ``training/resources/chno_labels.h5``).

==============  ===============================================================
``levels``      the levels of theory: ωB97X/6-31G* energies + forces, CCSD(T)
                energies (cc-pVDZ, cc-pVTZ, DZ/TZ CBS)
``generate``    the resumable, settings-checked generator (:func:`generate`)
``structures``  inputs: XYZ/PDB files and the built-in CHNO plan
``cli``         the ``openmm-ani train labels`` command
==============  ===============================================================
"""

from .cli import register, run_labels
from .generate import ENERGY_KEYS, MoleculeJob, check_resumable, generate, load_existing, provenance_path
from .levels import (
    CARDINAL_DZ, CARDINAL_TZ, CBS_KEY, CC_DZ_KEY, CC_TZ_KEY, DFT_KEY, HF_DZ_KEY, HF_TZ_KEY, CCResult, CCSettings,
    DFTSettings, build_mol, cbs_two_point, ccsd_t_energy, dft_energy_forces, frozen_core_orbitals,
)
from .structures import BUILTIN_PLAN, builtin_jobs, read_structure

__all__ = [
    "BUILTIN_PLAN", "CARDINAL_DZ", "CARDINAL_TZ", "CBS_KEY", "CCResult", "CCSettings", "CC_DZ_KEY", "CC_TZ_KEY",
    "DFTSettings", "DFT_KEY", "ENERGY_KEYS", "HF_DZ_KEY", "HF_TZ_KEY", "MoleculeJob", "build_mol", "builtin_jobs",
    "cbs_two_point", "ccsd_t_energy", "check_resumable", "dft_energy_forces", "frozen_core_orbitals", "generate",
    "load_existing", "provenance_path", "read_structure", "register", "run_labels",
]
