"""ANI potentials as OpenMM forces and systems (the user-facing OpenMM API).

:class:`ANIPotential` loads an ANI model at a chosen precision and turns it into
``openmmtorch.TorchForce`` objects, complete :class:`openmm.System` objects, mixed ML/MM
systems, or a TorchScript file that openmm-torch evaluates without Python (and without
``openmm_ani``) in the MD loop. Method names follow OpenMM and openmm-ml (camelCase) so that
an openmm-ml user recognises them.
"""

import os
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence, Union

import torch

from ..files import atomic_write
from ..formats import registry
from ..model import ANIModel
from .embedding import create_mixed_system
from .forces import create_module, create_torch_force
from .periodic import region_treatment
from .topology import topology_atomic_numbers

if TYPE_CHECKING:  # pragma: no cover - typing only
    import openmm
    import openmm.app

#: Accepted ``precision`` values and the torch dtype of each.
PRECISIONS: Dict[str, torch.dtype] = {"single": torch.float32, "double": torch.float64}


class ANIPotential:
    """An ANI potential for OpenMM.

    Parameters
    ----------
    name_or_path
        A bundled model name (``"ani1ccx"``, ``"ani1x"``), a native ``.npz`` model file, or a
        NeuroChem model folder (see :func:`openmm_ani.models.load`).
    model_index
        ``None`` for the ensemble mean, or the index of one ensemble member.
    precision
        ``"single"`` (float32 model, the fast default) or ``"double"`` (float64).

    Attributes
    ----------
    model : ANIModel
        The PyTorch model (Å, Ha), in the dtype of ``precision``.
    name : str
        The model name or path given.
    precision : str
        ``"single"`` or ``"double"``.

    Raises
    ------
    ValueError
        For an unknown model or precision, or a bad ``model_index``.

    Examples
    --------
    >>> import openmm_ani
    >>> from openmm import app
    >>> potential = openmm_ani.ANIPotential("ani1ccx")
    >>> pdb = app.PDBFile("molecule.pdb")                   # doctest: +SKIP
    >>> system = potential.createSystem(pdb.topology)      # doctest: +SKIP
    """

    def __init__(
        self,
        name_or_path: Union[str, "os.PathLike[str]"] = "ani1ccx",
        model_index: Optional[int] = None,
        precision: str = "single",
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(sorted(PRECISIONS))}")
        self.name: str = os.fspath(name_or_path)
        self.model_index = model_index
        self.precision: str = precision
        self.model: ANIModel = registry.load(name_or_path, model_index=model_index, dtype=PRECISIONS[precision])
        self.model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def __repr__(self) -> str:
        member = "" if self.model_index is None else f", model_index={self.model_index}"
        return f"ANIPotential({self.name!r}{member}, precision={self.precision!r})"

    def createModule(
        self,
        atomic_numbers: Sequence[int],
        atoms: Optional[Sequence[int]] = None,
        periodic: bool = False,
        make_whole: bool = False,
        portable: bool = False,
    ) -> torch.jit.ScriptModule:
        """The TorchScript module a TorchForce evaluates.

        Parameters
        ----------
        atomic_numbers
            Atomic numbers of the ML atoms, in the order of ``atoms``.
        atoms
            Indices of the ML particles in the System (any order); ``None`` = all particles.
        periodic
            Full periodic boundary conditions for a pure ANI box.
        make_whole
            Make the ML region whole across the box and treat it as an isolated molecule
            (ML regions of periodic ML/MM systems).
        portable
            Never call openmm-ani's C++ kernel (a saved module then loads without openmm-ani). By
            default the kernel computes energy and forces on CPU when it is built; the TorchScript
            path (same results) runs otherwise and on GPUs.

        Returns
        -------
        torch.jit.ScriptModule
            ``forward(positions [N, 3] nm, boxvectors [3, 3] nm or None) -> energy`` (kJ/mol, 0-d,
            carrying the analytic forces for back-propagation); ``member_energies(...) -> [M]`` kJ/mol.

        Raises
        ------
        ValueError
            If an element is not supported (naming atoms and elements) or the options conflict.
        """
        return create_module(self.model, atomic_numbers, atoms=atoms, periodic=periodic, make_whole=make_whole,
                             portable=portable)

    def createForce(
        self,
        atomic_numbers: Sequence[int],
        atoms: Optional[Sequence[int]] = None,
        periodic: bool = False,
        make_whole: bool = False,
        portable: bool = False,
    ) -> Any:
        """An ``openmmtorch.TorchForce`` with the ANI energy of the given atoms.

        Parameters are those of :meth:`createModule`. The force uses periodic boundary
        conditions (receives box vectors) when ``periodic`` or ``make_whole`` is set.

        Returns
        -------
        openmmtorch.TorchForce
            Energy in kJ/mol from positions in nm; analytic forces (read by openmm-torch's
            back-propagation). openmm-torch moves the module to the Context's device (CPU for
            Reference/CPU, the GPU for CUDA/OpenCL), so the same force runs on every platform. Unless
            ``portable``, a System holding it that is serialised must be deserialised in a process that
            has imported ``openmm_ani`` (which registers the C++ kernel).
        """
        module = self.createModule(atomic_numbers, atoms, periodic, make_whole, portable=portable)
        return create_torch_force(module, bool(periodic or make_whole), f"ANI {self.name}")

    def createSystem(self, topology: "openmm.app.Topology", removeCMMotion: bool = True) -> "openmm.System":
        """A System whose only interaction is the ANI energy of all atoms.

        Parameters
        ----------
        topology
            The topology; periodic (box vectors passed to ANI) when it has box vectors.
        removeCMMotion
            Add a ``CMMotionRemover``.

        Returns
        -------
        openmm.System
            Particle masses from the elements (amu), one TorchForce, the topology's box.

        Raises
        ------
        ValueError
            If an atom has no element or an element the model does not support.
        """
        import openmm

        numbers = topology_atomic_numbers(topology)
        box = topology.getPeriodicBoxVectors()
        system = openmm.System()
        for atom in topology.atoms():
            system.addParticle(atom.element.mass)
        if box is not None:
            system.setDefaultPeriodicBoxVectors(*box)
        system.addForce(self.createForce(numbers, periodic=region_treatment(box is not None, subset=False).periodic))
        if removeCMMotion:
            system.addForce(openmm.CMMotionRemover())
        return system

    def createMixedSystem(
        self,
        topology: "openmm.app.Topology",
        system: "openmm.System",
        ml_atoms: Sequence[int],
        interpolate: bool = False,
        removeConstraints: bool = True,
        forceGroup: int = 0,
        linkAtomDistances: Optional[Sequence[Sequence[Any]]] = None,
    ) -> "openmm.System":
        """A copy of an MM system with ``ml_atoms`` treated by ANI (mechanical embedding).

        An ML region cut through bonds of the topology gets hydrogen link atoms on the cut
        bonds; ``linkAtomDistances`` (``(atom1, atom2, distance)``, as in openmm-ml 1.8) sets
        their distance from the ML atom. See
        :func:`openmm_ani.openmm.embedding.create_mixed_system` for the parameters and rules.
        """
        return create_mixed_system(
            self.model,
            topology,
            system,
            ml_atoms,
            interpolate=interpolate,
            removeConstraints=removeConstraints,
            forceGroup=forceGroup,
            linkAtomDistances=linkAtomDistances,
        )

    def export(
        self,
        path: Union[str, "os.PathLike[str]"],
        topology: Optional["openmm.app.Topology"] = None,
        atomic_numbers: Optional[Sequence[int]] = None,
        periodic: Optional[bool] = None,
        atoms: Optional[Sequence[int]] = None,
        make_whole: bool = False,
        portable: bool = True,
    ) -> str:
        """Write the TorchScript file of the force, usable as ``openmmtorch.TorchForce(path)``.

        Parameters
        ----------
        path
            Output ``.pt`` file.
        topology
            Take the atomic numbers (of ``atoms``, or all atoms) and, unless ``periodic`` is
            given, the periodicity (box vectors present) from this topology.
        atomic_numbers
            Atomic numbers of the ML atoms (instead of ``topology``).
        periodic
            Full periodic boundary conditions; default: the topology has box vectors and
            ``atoms`` is ``None`` (an ML subset of a periodic system needs ``make_whole=True``).
        atoms
            Indices of the ML particles among the System's particles; ``None`` = all.
        make_whole
            See :meth:`createModule`.
        portable
            Write a module that never calls openmm-ani's C++ kernel (the default): the file runs with
            openmm-torch alone, on the analytic TorchScript path. ``False`` writes the kernel path
            (faster on CPU), which needs ``import openmm_ani`` in the process that loads the file.

        Returns
        -------
        str
            The path written. A portable file needs only openmm-torch (not ``openmm_ani``) to run;
            remember ``setUsesPeriodicBoundaryConditions(True)`` on a TorchForce made from a
            periodic or ``make_whole`` file.

        Raises
        ------
        ValueError
            If neither or both of ``topology`` and ``atomic_numbers`` are given, or the elements
            are not supported.
        """
        if (topology is None) == (atomic_numbers is None):
            raise ValueError("give exactly one of topology and atomic_numbers")
        if topology is not None:
            numbers = topology_atomic_numbers(topology, atoms)
            if periodic is None:  # a boxed topology: full PBC for all atoms; subsets use make_whole instead
                has_box = topology.getPeriodicBoxVectors() is not None
                periodic = region_treatment(has_box, atoms is not None or make_whole).periodic
        else:
            numbers = [int(z) for z in atomic_numbers]  # type: ignore[union-attr]
        module = self.createModule(numbers, atoms=atoms, periodic=bool(periodic), make_whole=make_whole,
                                   portable=portable)
        target = os.fspath(path)
        with atomic_write(target, "wb") as stream:
            torch.jit.save(module, stream)
        return target

