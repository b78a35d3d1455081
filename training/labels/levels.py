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

PySCF is imported inside the functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from openmm_ani.units import BOHR_TO_ANGSTROM


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
