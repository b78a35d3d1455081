"""Building openmm-torch ``TorchForce`` objects around the ANI boundary module.

:func:`create_module` compiles :class:`~openmm_ani.openmm.module.ANIForceModule` with
TorchScript; :func:`create_torch_force` wraps it in a ``TorchForce``.
"""

from typing import Any, Optional, Sequence

import torch

from ..model import ANIModel
from .module import ANIForceModule, EnergyAndForces
from .openmmtorch import import_openmmtorch


def create_module(
    model: ANIModel,
    atomic_numbers: Sequence[int],
    atoms: Optional[Sequence[int]] = None,
    periodic: bool = False,
    make_whole: bool = False,
    portable: bool = False,
) -> torch.jit.ScriptModule:
    """The TorchScript ANI module of a set of atoms (see :class:`ANIForceModule` for the arguments).

    ``portable=True`` gives a module whose code never calls openmm-ani's C++ kernel, so that a saved
    file loads where openmm-ani is not installed; otherwise the kernel is used on CPU when it is built
    (a file saved from such a module needs ``import openmm_ani`` before it is loaded).

    Returns
    -------
    torch.jit.ScriptModule
        ``forward(positions [N, 3] nm, boxvectors [3, 3] nm or None) -> energy`` (kJ/mol, 0-d),
        ``member_energies(...) -> [M]`` kJ/mol.
    """
    module = ANIForceModule(model, atomic_numbers, atoms=atoms, periodic=periodic, make_whole=make_whole,
                            kernel=False if portable else None)
    return torch.jit.script(module)


def create_torch_force(module: torch.jit.ScriptModule, uses_box: bool, name: str) -> Any:
    """An ``openmmtorch.TorchForce`` evaluating ``module`` (energy in kJ/mol).

    A module made by :func:`create_module` (it has ``energy_and_forces``) is wrapped in
    :class:`~openmm_ani.openmm.module.EnergyAndForces` and the force set to ``setOutputsForces(True)``:
    openmm-torch takes the analytic forces as they are, with no autograd pass. Other modules (e.g. one
    that computes extra positions from the particles) return the energy, and openmm-torch back-propagates
    (the ANI part still contributes its analytic gradient).

    Parameters
    ----------
    module
        A module made by :func:`create_module`, or one that returns the energy (kJ/mol) of positions (nm).
    uses_box
        The module takes box vectors (periodic or made whole).
    name
        The force's name.
    """
    openmmtorch = import_openmmtorch()
    outputs_forces = hasattr(module, "energy_and_forces")
    if outputs_forces:
        module = torch.jit.script(EnergyAndForces(module))
    force = openmmtorch.TorchForce(module)
    force.setOutputsForces(outputs_forces)
    force.setUsesPeriodicBoundaryConditions(bool(uses_box))
    force.setName(name)
    return force
