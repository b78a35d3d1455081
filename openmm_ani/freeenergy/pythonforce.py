"""ANI as an ``openmm.PythonForce`` whose serialised form is a few hundred bytes.

openmmtools copies, serialises and hashes Systems all the time (``ThermodynamicState``,
``MultiStateReporter``, ``ContextCache``). A ``TorchForce`` carries the whole TorchScript
file in its serialisation (~10 MB in single, ~40 MB in double precision for 8 members),
and with openmmtorch 1.5 + OpenMM 8.6 it cannot be deserialised at all (a crash inside
``TorchForceProxy::deserialize``), so a System holding one cannot be deep-copied.

:class:`ANIComputation` is a picklable callable holding only the model's *name*,
precision, member index, the atomic numbers and the periodic treatment; the model is
built on first use and cached per process, so unpickling (copying a System, an MPI rank
receiving it, a CustomCVForce cloning its variables) costs microseconds after the first.
"""

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import openmm
import torch

_CACHE: Dict[Tuple[Any, ...], torch.nn.Module] = {}


class ANIComputation:
    """The ANI energy and forces of a set of atoms, for ``openmm.PythonForce``.

    Parameters
    ----------
    name_or_path
        Model name or file (as for :class:`openmm_ani.ANIPotential`).
    model_index
        Ensemble member or ``None`` for the mean.
    precision
        ``"single"`` or ``"double"``.
    atomic_numbers
        Atomic numbers of the force's particles, in order.
    make_whole
        Make the atoms whole by minimum image across the periodic box first.

    Notes
    -----
    Called with an ``openmm.State`` of the force's particles (positions nm, box vectors nm);
    returns (energy kJ/mol, forces ``[n, 3]`` kJ/mol/nm).
    """

    def __init__(
        self,
        name_or_path: str,
        model_index: Optional[int],
        precision: str,
        atomic_numbers: Sequence[int],
        make_whole: bool,
    ) -> None:
        self.key = (str(name_or_path), model_index, str(precision), tuple(int(z) for z in atomic_numbers), bool(make_whole))

    def __getstate__(self) -> Dict[str, Any]:
        return {"key": self.key}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.key = tuple(state["key"])

    def module(self) -> torch.nn.Module:
        """The (cached) ANI module of these atoms (eager: called from Python, TorchScript's
        profiling executor would only add warm-up cost)."""
        module = _CACHE.get(self.key)
        if module is None:
            from ..potential import ANIPotential
            from ..torchforce import ANIForceModule

            name, model_index, precision, numbers, make_whole = self.key
            potential = ANIPotential(name, model_index=model_index, precision=precision)
            module = ANIForceModule(potential.model, list(numbers), atoms=None, make_whole=make_whole)
            _CACHE[self.key] = module
        return module

    def __call__(self, state: openmm.State) -> Tuple[float, np.ndarray]:
        module = self.module()
        positions = torch.tensor(
            state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer), dtype=torch.float64, requires_grad=True
        )
        box: Optional[torch.Tensor] = None
        if self.key[4]:
            box = torch.tensor(
                state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(openmm.unit.nanometer), dtype=torch.float64
            )
        energy = module(positions, box)
        (gradient,) = torch.autograd.grad(energy, positions)
        return float(energy.detach()), -gradient.numpy()


def create_python_ani_force(
    potential: Any, atomic_numbers: Sequence[int], atoms: Sequence[int], make_whole: bool
) -> openmm.PythonForce:
    """A ``PythonForce`` computing the ANI energy (kJ/mol) of ``atoms`` of a System.

    Parameters
    ----------
    potential
        An :class:`openmm_ani.ANIPotential` (its name, member index and precision are used).
    atomic_numbers
        Atomic numbers in the order of ``atoms``.
    atoms
        System particle indices of the ML atoms.
    make_whole
        Periodic ML/MM system: make the ML region whole and evaluate it as a molecule.

    Returns
    -------
    openmm.PythonForce
    """
    computation = ANIComputation(potential.name, potential.model_index, potential.precision, atomic_numbers, make_whole)
    computation.module()  # fail early on bad elements, and warm the cache
    force = openmm.PythonForce(computation)
    force.setParticles([int(i) for i in atoms])
    force.setUsesPeriodicBoundaryConditions(bool(make_whole))
    force.setName("ANI (PythonForce)")
    return force
