"""The one set of benchmark systems (``openmm_ani.benchmark.systems``, issue 17 item 6).

Every benchmark driver builds its systems from :func:`build_case`, so a case name must mean one
system: the atom counts are those the docs give, the model-level inputs (Å, wrapped into the
cell) give TorchANI 2.2.4 the energy that the case's openmm-ani System gives in OpenMM, and an
ML/MM case's MM System is the mixed System's MM part.
"""

import numpy as np
import pytest

from openmm_ani.benchmark.systems import CASES, CPU_CASES, build_case

#: Atoms of each case, as docs/benchmarks-openmm.md and the module docstring list them.
ATOMS = {"pxylene": 18, "alanine": 22, "alanine-water": 2269, "t4-mlmm": 2621, "water-255": 255, "water-1k": 1053,
         "water-2.5k": 2460, "water-3k": 3180, "water-10k": 10467}


def openmm_energy(system, case, precision="double"):
    """Potential energy (kJ/mol) of ``system`` at the case's positions, Reference platform."""
    import openmm
    from openmm import unit

    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    box = case.topology.getPeriodicBoxVectors()
    if box is not None:
        context.setPeriodicBoxVectors(*box)
    context.setPositions(case.positions)
    return context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)


def test_each_name_is_one_system_of_the_documented_size():
    assert set(ATOMS) == set(CASES) and set(CPU_CASES) <= set(CASES)
    for name in CASES:
        case = build_case(name, with_peer=False)
        assert case.name == name and case.num_atoms == ATOMS[name], name
        assert case.peer is None
        assert (case.mm is None) == (case.ml_atoms is None), name
    with pytest.raises(ValueError, match="unknown benchmark case 'waterbox'; choose from pxylene"):
        build_case("waterbox")


@pytest.mark.parametrize("name", ["pxylene", "water-255"])
def test_model_inputs_give_torchani_the_energy_of_the_openmm_system(name):
    """TorchANI 2.2.4 on ``model_inputs()`` (Å; wrapped positions and cell for the box) = the case's System in OpenMM."""
    torchani = pytest.importorskip("torchani", reason="TorchANI 2.2.4 reference (scripts/setup_test_reference.py)")
    import torch

    from openmm_ani.units import HARTREE_TO_KJ_PER_MOL

    case = build_case(name, with_peer=False)
    z, x, cell = case.model_inputs()
    assert x.shape == (ATOMS[name], 3) and (cell is None) == (name == "pxylene")
    model = torchani.models.ANI1ccx(periodic_table_index=True).double()
    kwargs = {}
    if cell is not None:
        kwargs = {"cell": torch.tensor(cell), "pbc": torch.tensor([True, True, True])}
        fractional = x @ np.linalg.inv(cell)
        assert fractional.min() >= 0.0 and fractional.max() < 1.0
    reference = float(model((torch.tensor(z)[None], torch.tensor(x)[None]), **kwargs).energies.detach()) * HARTREE_TO_KJ_PER_MOL
    assert openmm_energy(case.build("double"), case) == pytest.approx(reference, abs=1e-5 * max(1.0, abs(reference) / 1e5))


def test_mlmm_case_engines_and_its_mm_system():
    """``alanine-water``: engines MM only / openmm-ani; the MM System is what the mixed System embeds the solute in."""
    case = build_case("alanine-water", with_peer=False)
    assert list(case.engines("single")) == ["MM only", "openmm-ani"]
    assert case.ml_atoms == list(range(22))
    mm = case.mm()
    assert mm.getNumParticles() == 2269 and mm.usesPeriodicBoundaryConditions()
    system = case.build("double")  # held: getForces() returns views into it (a temporary System is freed under them)
    names = [f.getName() for f in system.getForces()]
    assert any(n.startswith("ANI") for n in names), names


def test_the_cli_help_names_the_cases():
    """``openmm-ani benchmark --help`` spells the cases out (the parser must not import torch): they must agree."""
    from openmm_ani.cli.benchmark import CASES_HELP

    listed, default = CASES_HELP.split("(default: ")
    assert listed.split()[2:] == list(CASES)
    assert default.rstrip(")").split() == list(CPU_CASES)
