"""Ensemble disagreement: the signal that a simulation left the model's training domain.

An ANI ensemble's members agree where they were trained and disagree elsewhere (the
query-by-committee criterion used to build the ANI-1x data set). :func:`evaluate_disagreement`
computes, for one configuration, the ensemble energy, the standard deviation of the members'
energies and the spread of the members' forces; :class:`EnsembleDisagreementReporter` writes
them every N steps of an OpenMM simulation and warns once the energy standard deviation
crosses a threshold. Both evaluate the PyTorch model on the state's positions, outside the
MD loop.

Definitions (``M`` members, member energies ``E_k``, member forces ``F_k,i = -dE_k/dx_i``):

* energy: ``mean_k E_k`` (kJ/mol);
* energy_std: sample standard deviation of ``E_k`` (divisor ``M - 1``; 0 for one model), kJ/mol;
* force_spread: ``max_i sqrt(mean_k |F_k,i - mean_k F_k,i|^2)``, the largest per-atom RMS
  deviation of the member forces from the ensemble force, kJ/mol/nm.
"""

import logging
import os
import warnings
from dataclasses import dataclass
from typing import IO, Any, List, Optional, Sequence, Tuple, Union

import torch

from ..model import ANIModel
from ..model.ani import QBC_THRESHOLD_KCAL_PER_SQRT_ATOM
from .module import ANIForceModule
from .periodic import region_treatment
from .potential import ANIPotential
from .topology import check_atom_indices, topology_atomic_numbers

logger = logging.getLogger(__name__)


class EnsembleDisagreementWarning(UserWarning):
    """The ensemble disagreement crossed the user's threshold."""


@dataclass(frozen=True)
class Disagreement:
    """Ensemble statistics of one configuration (OpenMM units).

    Attributes
    ----------
    energy
        Ensemble-mean ML energy, kJ/mol.
    energy_std
        Sample standard deviation of the member energies, kJ/mol.
    force_spread
        Largest per-atom RMS deviation of member forces from the mean force, kJ/mol/nm
        (``nan`` when forces were not requested).
    members
        Energy of each member, kJ/mol (empty when built without them).
    """

    energy: float
    energy_std: float
    force_spread: float
    members: Tuple[float, ...] = ()


class DisagreementEvaluator:
    """Evaluate :class:`Disagreement` for configurations of one system.

    Parameters
    ----------
    model
        The ANI model (an ensemble; a single model gives zero spread).
    atomic_numbers
        Atomic numbers of the ML atoms, in the order of ``atoms``.
    atoms
        Indices of the ML atoms among the system's particles; ``None`` = all.
    periodic
        Full periodic boundary conditions (pure ANI box).
    make_whole
        Make the ML region whole across the box and treat it as an isolated molecule.
    """

    def __init__(
        self,
        model: ANIModel,
        atomic_numbers: Sequence[int],
        atoms: Optional[Sequence[int]] = None,
        periodic: bool = False,
        make_whole: bool = False,
    ) -> None:
        self.module = ANIForceModule(model, atomic_numbers, atoms=atoms, periodic=periodic, make_whole=make_whole)
        self.dtype = next(model.parameters()).dtype
        self.needs_box = periodic or make_whole
        self.atoms: Optional[torch.Tensor] = None if atoms is None else torch.tensor(list(atoms), dtype=torch.long)

    def __call__(self, positions: Any, box_vectors: Any = None, forces: bool = True) -> Disagreement:
        """Statistics for one configuration.

        Parameters
        ----------
        positions
            ``[N, 3]`` positions of all particles in nm (array, tensor or ``openmm.unit.Quantity``).
        box_vectors
            ``[3, 3]`` box vectors in nm (required for periodic/make_whole evaluators).
        forces
            Also compute the force spread (``M`` backward passes).

        Returns
        -------
        Disagreement

        Raises
        ------
        ValueError
            For NaN positions (naming the atoms) or missing box vectors.
        """
        x = torch.as_tensor(_strip_nm(positions), dtype=self.dtype).reshape(-1, 3)
        finite = torch.isfinite(x).all(dim=1)
        if not bool(finite.all()):
            bad = (~finite).nonzero().flatten().tolist()
            raise ValueError(f"positions of atoms {bad} are NaN or infinite")
        box: Optional[torch.Tensor] = None
        if self.needs_box:
            if box_vectors is None:
                raise ValueError("this system is periodic: box vectors are required")
            box = torch.as_tensor(_strip_nm(box_vectors), dtype=self.dtype).reshape(3, 3)
        x.requires_grad_(forces)
        with torch.set_grad_enabled(forces):
            members = self.module.member_energies(x, box)
        count = members.shape[0]
        std = float(members.detach().std(unbiased=True)) if count > 1 else 0.0
        spread = float("nan")
        if forces:
            member_forces = torch.stack(
                [-torch.autograd.grad(members[k], x, retain_graph=k + 1 < count)[0] for k in range(count)]
            )
            deviation = member_forces - member_forces.mean(0, keepdim=True)
            per_atom = deviation.pow(2).sum(-1).mean(0).sqrt()
            if self.atoms is not None:
                per_atom = per_atom.index_select(0, self.atoms)
            spread = float(per_atom.max())
        values = tuple(float(v) for v in members.detach())
        return Disagreement(float(members.detach().mean()), std, spread, values)


def _strip_nm(value: Any) -> Any:
    """``value`` in nm without units (Quantity, numpy array, tensor or nested lists)."""
    import openmm.unit as u

    if u.is_quantity(value):
        value = value.value_in_unit(u.nanometer)
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "x"):  # list of Vec3
        value = [[v[0], v[1], v[2]] for v in value]
    return value


def _strip_kj(value: Any) -> float:
    import openmm.unit as u

    if u.is_quantity(value):
        return float(value.value_in_unit(u.kilojoule_per_mole))
    return float(value)


class EnsembleDisagreementReporter:
    """OpenMM reporter writing the ANI ensemble disagreement every ``reportInterval`` steps.

    Parameters
    ----------
    file
        Output path or text stream; columns ``step, time_ps, energy_kJ/mol, energy_std_kJ/mol``
        and, with ``forces``, ``force_spread_kJ/mol/nm`` (comma separated, one header line starting
        with ``#``).
    reportInterval
        Steps between reports.
    topology
        The simulated topology (elements of the ML atoms, periodicity).
    potential
        An :class:`~openmm_ani.ANIPotential` (its model is used) or a model name.
    ml_atoms
        Indices of the ML atoms for mixed ML/MM systems; ``None`` = every atom is ML.
    threshold
        Energy standard deviation (kJ/mol, or an energy Quantity) above which an
        :class:`EnsembleDisagreementWarning` is issued (once per upward crossing); ``None`` = never.
    forces
        Also report the force spread (a gradient of each member per report); without it the file
        has no force column.
    append
        Continue an existing file: open a path in append mode and write no header line.

    Notes
    -----
    Periodic topologies: a pure ANI system is evaluated with full periodic boundary
    conditions, an ML subset made whole and isolated (as :meth:`ANIPotential.createMixedSystem`).
    ``last`` holds the latest :class:`Disagreement`, ``exceeded`` the steps at which the
    threshold was crossed.
    """

    def __init__(
        self,
        file: Union[str, "os.PathLike[str]", IO[str]],
        reportInterval: int,
        topology: Any,
        potential: Union[ANIPotential, str] = "ani1ccx",
        ml_atoms: Optional[Sequence[int]] = None,
        threshold: Any = None,
        forces: bool = True,
        append: bool = False,
    ) -> None:
        if int(reportInterval) < 1:
            raise ValueError(f"reportInterval must be a positive number of steps, got {reportInterval}")
        self._interval = int(reportInterval)
        if isinstance(potential, str):
            potential = ANIPotential(potential, precision="double")
        atoms = None if ml_atoms is None else check_atom_indices(ml_atoms, topology.getNumAtoms(), "ML atom")
        numbers = topology_atomic_numbers(topology, atoms)
        treatment = region_treatment(topology.getPeriodicBoxVectors() is not None, subset=atoms is not None)
        self.evaluator = DisagreementEvaluator(
            potential.model, numbers, atoms=atoms, periodic=treatment.periodic, make_whole=treatment.make_whole
        )
        self.threshold: Optional[float] = None if threshold is None else _strip_kj(threshold)
        self.forces = bool(forces)
        self.last: Optional[Disagreement] = None
        self.exceeded: List[int] = []
        self._above = False
        if isinstance(file, (str, os.PathLike)):
            self._out: IO[str] = open(file, "a" if append else "w")
            self._own = True
        else:
            self._out = file
            self._own = False
        if not append:
            columns = ["step", "time_ps", "energy_kJ/mol", "energy_std_kJ/mol"] + (["force_spread_kJ/mol/nm"] if self.forces else [])
            self._out.write("#" + ",".join(columns) + "\n")

    def describeNextReport(self, simulation: Any) -> Tuple[int, bool, bool, bool, bool, bool]:
        """Steps to the next report; positions are needed, unwrapped."""
        steps = self._interval - simulation.currentStep % self._interval
        return (steps, True, False, False, False, False)

    def report(self, simulation: Any, state: Any) -> None:
        """Evaluate the ensemble on ``state``'s positions and write one line."""
        import openmm.unit as u

        box = state.getPeriodicBoxVectors() if self.evaluator.needs_box else None
        result = self.evaluator(state.getPositions(asNumpy=True), box, forces=self.forces)
        self.last = result
        step = simulation.currentStep
        time = state.getTime().value_in_unit(u.picosecond)
        values = [result.energy, result.energy_std] + ([result.force_spread] if self.forces else [])
        self._out.write(f"{step},{time:.6f}," + ",".join(f"{v:.6f}" for v in values) + "\n")
        self._out.flush()
        if self.threshold is not None:
            above = result.energy_std > self.threshold
            if above and not self._above:
                self.exceeded.append(step)
                message = (
                    f"ANI ensemble energy standard deviation {result.energy_std:.3f} kJ/mol exceeds the threshold "
                    f"{self.threshold:.3f} kJ/mol at step {step}: the simulation may have left the model's "
                    "training domain"
                )
                logger.warning(message)
                warnings.warn(message, EnsembleDisagreementWarning, stacklevel=2)
            self._above = above

    def close(self) -> None:
        """Close the output file (if this reporter opened it)."""
        if self._own and not self._out.closed:
            self._out.close()


__all__ = ["QBC_THRESHOLD_KCAL_PER_SQRT_ATOM", "Disagreement", "DisagreementEvaluator", "EnsembleDisagreementReporter", "EnsembleDisagreementWarning"]
