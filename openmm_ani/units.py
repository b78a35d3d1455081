"""Unit constants of openmm-ani, named once.

Inside the model, lengths are in ångström (Å) and energies in hartree (Ha), the
units of the ANI training data. At the OpenMM boundary lengths are nanometres
(nm) and energies kJ/mol. Every conversion in the package uses these names;
no other module writes a bare conversion factor.

Values are CODATA 2018, the values OpenMM 8 uses.
"""

from typing import Final

#: Å per nm.
NM_TO_ANGSTROM: Final[float] = 10.0
#: nm per Å.
ANGSTROM_TO_NM: Final[float] = 0.1
#: Å per bohr (CODATA 2018).
BOHR_TO_ANGSTROM: Final[float] = 0.529177210903
#: kJ/mol per hartree (CODATA 2018: 4.3597447222071e-18 J x 6.02214076e23 / 1000).
HARTREE_TO_KJ_PER_MOL: Final[float] = 2625.4996394798254
#: kJ per kcal (thermochemical calorie).
KCAL_TO_KJ: Final[float] = 4.184
#: kcal/mol per hartree.
HARTREE_TO_KCAL_PER_MOL: Final[float] = HARTREE_TO_KJ_PER_MOL / KCAL_TO_KJ
#: (kJ/mol)/nm per Ha/Å: the factor that turns an ANI force into an OpenMM force.
HARTREE_PER_ANGSTROM_TO_KJ_PER_MOL_PER_NM: Final[float] = HARTREE_TO_KJ_PER_MOL * NM_TO_ANGSTROM
#: Coulomb's constant 1/(4 pi eps0) in kJ mol^-1 nm e^-2, the value OpenMM 8 uses (CODATA 2018).
COULOMB_CONSTANT_KJ_NM_PER_MOL_E2: Final[float] = 138.93545764438198
