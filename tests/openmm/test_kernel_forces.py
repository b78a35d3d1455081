"""OpenMM Contexts with the C++ kernel path against the portable TorchScript path (issue 10).

The kernel (``createForce`` default) and portable (``portable=True``) forces are independent
implementations of the same analytic forces; in a Context (Reference and CPU platforms, through
openmm-torch's frozen module) they must agree, and each must match finite differences of the
Context energy. Exported files: the default is portable; ``portable=False`` needs openmm_ani imported.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import openmm
import pytest
from openmm import unit

import openmm_ani
from openmm_ani import kernels

from finite_differences import numeric_force
from openmm_inputs import ligand_pdb, small_waterbox

KJ = unit.kilojoule_per_mole
FORCE_UNIT = unit.kilojoule_per_mole / unit.nanometer

pytestmark = pytest.mark.skipif(not kernels.available(), reason="C++ kernels not built")


def system_with(potential, topology, portable):
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    numbers = [a.element.atomic_number for a in topology.atoms()]
    system.addForce(potential.createForce(numbers, periodic=box is not None, portable=portable))
    return system


def evaluate(system, platform, positions):
    properties = {"Threads": "1"} if platform == "CPU" else {}
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform),
                             properties)
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True)
    return context, state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(FORCE_UNIT)


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
@pytest.mark.parametrize("case", ["ligand", "waterbox"])
def test_kernel_and_portable_forces_agree_in_a_context(platform, case):
    """float64: kernel and portable TorchForces give the same energy (1e-6 kJ/mol) and forces (1e-9 relative)."""
    potential = openmm_ani.ANIPotential("ani1ccx", precision="double")
    if case == "ligand":
        pdb = ligand_pdb()
        topology, positions = pdb.topology, pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    else:
        topology, positions, _ = small_waterbox()
        positions = positions + 0.37  # molecules straddle the faces: images matter
    results = [evaluate(system_with(potential, topology, portable), platform, positions * unit.nanometer)[1:]
               for portable in (False, True)]
    (e_kernel, f_kernel), (e_portable, f_portable) = results
    assert e_kernel == pytest.approx(e_portable, abs=1e-6)
    assert np.abs(f_kernel - f_portable).max() < 1e-9 * np.abs(f_portable).max()
    assert np.abs(f_portable).max() > 100.0


def test_kernel_forces_match_context_finite_differences():
    """CPU platform, float64 model: kernel forces against central differences of the Context energy."""
    pdb = ligand_pdb()
    system = system_with(openmm_ani.ANIPotential("ani1ccx", precision="double"), pdb.topology, False)
    positions = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    context, _, forces = evaluate(system, "CPU", positions * unit.nanometer)
    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (12, 2), (17, 0)]:
        numeric = numeric_force(context, positions, atom, axis, h)
        assert numeric == pytest.approx(forces[atom, axis], abs=1e-3 + 1e-6 * abs(forces[atom, axis]))


RUN = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch, openmm, openmmtorch
    if sys.argv[2] == "1":
        import openmm_ani
    data = json.load(open(sys.argv[3]))
    system = openmm.System()
    for mass in data["masses"]:
        system.addParticle(mass)
    system.addForce(openmmtorch.TorchForce(sys.argv[1]))
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(np.array(data["positions"]))
    print(json.dumps(context.getState(getEnergy=True).getPotentialEnergy()._value))
    """
)


def test_exported_kernel_file_needs_openmm_ani_and_portable_does_not(tmp_path):
    """export(portable=False) runs after `import openmm_ani` and not without it; the default file runs alone."""
    pdb = ligand_pdb()
    potential = openmm_ani.ANIPotential("ani1ccx", precision="double")
    portable = potential.export(tmp_path / "portable.pt", topology=pdb.topology)
    kernel = potential.export(tmp_path / "kernel.pt", topology=pdb.topology, portable=False)
    data = {"masses": [a.element.mass.value_in_unit(unit.dalton) for a in pdb.topology.atoms()],
            "positions": pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer).tolist()}
    (tmp_path / "data.json").write_text(json.dumps(data))
    (tmp_path / "run.py").write_text(RUN)

    def run(path, with_openmm_ani):
        return subprocess.run([sys.executable, str(tmp_path / "run.py"), str(path), "1" if with_openmm_ani else "0",
                               str(tmp_path / "data.json")], capture_output=True, text=True, cwd=tmp_path,
                              env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=300)

    energies = {}
    for name, path, flag in (("portable", portable, False), ("kernel", kernel, True)):
        result = run(path, flag)
        assert result.returncode == 0, result.stderr
        energies[name] = json.loads(result.stdout)
    assert energies["kernel"] == pytest.approx(energies["portable"], abs=1e-6)
    failed = run(kernel, False)
    assert failed.returncode != 0 and "openmm_ani" in failed.stderr
