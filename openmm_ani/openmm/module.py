"""The OpenMM boundary: ANI as a TorchScript module for openmm-torch's ``TorchForce``.

:class:`ANIForceModule` takes OpenMM's units and conventions — positions ``[N, 3]`` of *all*
particles in nm, box vectors ``[3, 3]`` in nm when periodic — and returns the ANI energy in
kJ/mol. Element indices are fixed at construction, so the module does no element lookup per
step. Unit conversion happens here and nowhere else, with the constants of :mod:`openmm_ani.units`.

Forces are not back-propagated through the model: the energy and its analytic gradient come from
one :class:`~openmm_ani.model.fused.FusedANI` call (the C++ kernel on CPU, the TorchScript path
elsewhere) with no autograd graph, and ``forward`` returns the energy plus
``s - s.item()`` with ``s = sum(gradient * x)``, a term whose value is exactly zero and whose
derivative with respect to the positions is the analytic gradient. openmm-torch's back-propagation (or
``torch.autograd.grad``) then yields the forces at the cost of one product; the output is still the
energy alone, so ``TorchForce(module)`` needs no ``setOutputsForces``. Only first derivatives are
available this way (no Hessians through the module).

Periodicity has two modes:

* ``periodic=True`` (pure ANI systems): ANI sees the periodic box and all images within
  its cutoff (minimum image, requires box widths >= 2 x cutoff);
* ``make_whole=True`` (an ML region inside a larger periodic MM system): the ML atoms are
  first made whole by the minimum-image vector from the region's first atom (the first of
  ``atoms`` as given), then evaluated as an isolated molecule — ML atoms never interact with
  periodic images of the ML region through ANI. A region spanning half a box vector or more
  raises an error (see :func:`openmm_ani.openmm.periodic.make_whole`).

Coordinates are taken relative to that first ML atom in the precision OpenMM passes them
(float64 on the CPU and Reference platforms) *before* they are cast to the model's
precision, so a single-precision energy does not depend on where the molecule sits in space.
"""

import copy
from typing import Final, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from ..model import ANIModel
from ..model.fused import FusedANI
from ..model.neighbors import check_box
from ..units import HARTREE_TO_KJ_PER_MOL, NM_TO_ANGSTROM
from .periodic import make_whole as whole_region
from .topology import check_atom_indices


#: ML regions of at most this many atoms, when not fully periodic, use fixed AEV tables
#: (their triplet table grows as N**3 / 2: 2448 entries for 18 atoms, 125k for 64).
FIXED_TABLES_MAX_ATOMS: int = 64


class ANIForceModule(torch.nn.Module):
    """ANI energy of (a subset of) an OpenMM system, in OpenMM units.

    Parameters
    ----------
    model
        The ANI model (its dtype sets the precision of the calculation). The module keeps a
        frozen copy; the model passed in is not modified.
    atomic_numbers
        Atomic numbers of the ML atoms, in the order of ``atoms``.
    atoms
        Indices of the ML atoms among the System's particles (any order, need not be
        contiguous); ``None`` means all particles, in order.
    periodic
        Evaluate ANI with periodic boundary conditions (box vectors required in ``forward``).
    make_whole
        Make the ML region whole across the periodic box and evaluate it as an isolated molecule.
    kernel
        Use the C++ kernel on CPU (``None``: when it is built; ``False``: a portable module that
        loads without openmm-ani, e.g. for exported files).
    threads
        Threads of the C++ kernel: ``None`` chooses one thread for an ML region given by ``atoms``
        (in ML/MM the region is small and OpenMM's CPU threads work on the MM forces at the same
        time) and torch's intra-op threads for a whole system of ML atoms; ``0`` forces torch's
        threads, ``1`` a single thread.

    Notes
    -----
    ``forward(positions [N, 3] nm, boxvectors [3, 3] nm or None)`` returns the energy (kJ/mol)
    as a 0-d float64 tensor, differentiable with respect to ``positions`` (first derivatives);
    ``member_energies`` returns ``[M]`` energies of each ensemble member.

    Raises
    ------
    ValueError
        If an element is not supported by the model (naming the atoms), atom indices are
        negative, repeated or not integers, or the options conflict. At run time, ``forward``
        raises ``ValueError`` for a System with too few particles for ``atoms``, a region that
        cannot be made whole, and non-finite positions of ML atoms.
    """

    periodic: Final[bool]
    anchor: Final[int]
    max_atom: Final[int]
    make_whole: Final[bool]
    num_models: Final[int]
    length_scale: Final[float]
    energy_scale: Final[float]

    def __init__(
        self,
        model: ANIModel,
        atomic_numbers: Sequence[int],
        atoms: Optional[Sequence[int]] = None,
        periodic: bool = False,
        make_whole: bool = False,
        kernel: Optional[bool] = None,
        threads: Optional[int] = None,
    ) -> None:
        super().__init__()
        if periodic and make_whole:
            raise ValueError("periodic and make_whole are exclusive: choose one treatment of the box")
        numbers = torch.tensor([list(atomic_numbers)], dtype=torch.long)
        if numbers.shape[1] == 0:
            raise ValueError("no ML atoms given")
        if atoms is not None:
            atoms = check_atom_indices(atoms, None)
            if len(atoms) != numbers.shape[1]:
                raise ValueError(f"{len(atoms)} atom indices but {numbers.shape[1]} atomic numbers")
        if bool((numbers <= 0).any()):
            bad = (numbers[0] <= 0).nonzero().flatten().tolist()
            raise ValueError(f"atoms {bad} have no element (virtual sites or extra particles cannot be ML atoms)")
        # Atoms are evaluated sorted by element, so that each element's network sees a
        # contiguous block and the self energies are one constant.
        species = model.species(numbers)[0]
        order = torch.argsort(species, stable=True)
        indices = torch.tensor(list(atoms), dtype=torch.long) if atoms is not None else torch.arange(species.shape[0])
        self.register_buffer("species", species[order].unsqueeze(0))
        self.register_buffer("atoms", indices[order])
        # The region's reference atom (origin of the coordinates, centre of make_whole) is the
        # first ML atom as given, wherever sorting by element put it.
        self.anchor = int((order == 0).nonzero()[0, 0])
        self.max_atom = int(indices.max())
        counts: List[int] = torch.bincount(species, minlength=len(model.elements)).tolist()
        present = [e for e, n in enumerate(counts) if n > 0]
        self.register_buffer("self_energy", model.self_energies(species).to(torch.float64))
        # Private, frozen copies of the networks of the elements present (OpenMM needs gradients with
        # respect to positions only), with element indices renumbered 0, 1, ... over those elements.
        # AEV blocks of absent elements are identically zero, so the first layers keep only the
        # columns of present elements (a hydrocarbon keeps 128 of 384): the AEV of the present
        # elements alone has exactly that layout. The file a TorchForce serialises then carries no
        # weights of absent elements.
        networks = [copy.deepcopy(model.networks.networks[e]) for e in present]
        columns = model.aev.columns_for(present)
        for network in networks:
            for parameter in network.parameters():
                parameter.requires_grad_(False)
            if columns.shape[0] < model.aev.length:
                network.layers[0].restrict_inputs(columns)
        compact = torch.repeat_interleave(torch.arange(len(present)), torch.tensor([counts[e] for e in present]))
        self.register_buffer("compact_species", compact)
        self.counts: List[int] = [counts[e] for e in present]
        # Small open regions (a ligand, or any region made whole) use pair and triplet tables built
        # once on the TorchScript path; the C++ kernel searches pairs itself.
        fixed = (not periodic) and int(species.shape[0]) <= FIXED_TABLES_MAX_ATOMS
        if threads is None:
            threads = 1 if atoms is not None else 0
        self.fused = FusedANI(model.aev.parameters, networks, use_kernel=kernel,
                              fixed_species=compact if fixed else None, sorted_counts=self.counts, threads=threads)
        self.periodic = bool(periodic)
        self.make_whole = bool(make_whole)
        self.num_models = model.num_models
        self.length_scale = NM_TO_ANGSTROM
        self.energy_scale = HARTREE_TO_KJ_PER_MOL
        dtype = next(model.parameters()).dtype
        self.register_buffer("probe", torch.zeros(0, dtype=dtype))

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        need_gradient = positions.requires_grad
        energies, gradient = self._evaluate(positions, boxvectors, need_gradient)
        energy = energies.mean()
        if need_gradient:
            # s - s.item() is exactly zero and has the analytic gradient as its derivative with respect
            # to the ML positions. (openmm-torch freezes the module, and freezing removes detach(), so
            # the constant is taken with item().)
            ml = positions.index_select(0, self.atoms)
            s = ((gradient.to(positions.dtype) * (self.energy_scale * self.length_scale)) * ml).sum()
            energy = energy + (s - s.item())
        return energy

    @torch.jit.export
    def energy_and_forces(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """The energy (kJ/mol, 0-d float64) and the forces on all particles (``[N, 3]`` kJ/mol/nm, dtype of
        ``positions``; zero on particles that are not ML atoms), with no autograd at all: the outputs of a
        ``TorchForce`` with ``setOutputsForces(True)`` (see :class:`EnergyAndForces`)."""
        energies, gradient = self._evaluate(positions, boxvectors, True)
        forces = torch.zeros_like(positions)
        forces.index_copy_(0, self.atoms, gradient.to(positions.dtype) * (-self.energy_scale * self.length_scale))
        return energies.mean(), forces

    @torch.jit.export
    def member_energies(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        """Energy of each ensemble member, ``[M]`` kJ/mol (float64 whatever the model's precision).

        Differentiable with autograd (each member, to any order) when ``positions`` requires grad;
        that path builds an autograd graph and is slower than ``forward``.
        """
        if positions.requires_grad and torch.is_grad_enabled():
            return self._differentiable_member_energies(positions, boxvectors)
        return self._evaluate(positions, boxvectors, False)[0]

    def _differentiable_member_energies(self, positions: Tensor, boxvectors: Optional[Tensor]) -> Tensor:
        x, cell = self._coordinates(positions, boxvectors)
        energies = self.fused.differentiable(x, self.compact_species, cell) + self.self_energy
        if not bool(torch.isfinite(energies).all()):
            self._raise_not_finite(positions.detach().index_select(0, self.atoms))
        return energies * self.energy_scale

    def _evaluate(self, positions: Tensor, boxvectors: Optional[Tensor], need_gradient: bool) -> Tuple[Tensor, Tensor]:
        """Member energies ``[M]`` (kJ/mol, float64) and, if asked, the gradient ``[n, 3]`` (Ha/Å, model
        dtype) of their mean with respect to the model's coordinates of the ML atoms (in module order)."""
        # translation and minimum-image shifts have unit derivatives: the gradient with respect to
        # x is the gradient with respect to the raw positions
        with torch.no_grad():
            x, cell = self._coordinates(positions.detach(), boxvectors)
            # (the kernel would leave out pairs at non-finite distances instead of returning NaN)
            if not bool(torch.isfinite(x).all()):
                self._raise_not_finite(positions.detach().index_select(0, self.atoms))
            energies, gradient = self.fused(x, self.compact_species, cell, need_gradient)
        # The large self-energy constant is added in float64, so a float32 model's total energy
        # is not rounded to a float32 ulp of the total (about 1 kJ/mol for 255 water atoms).
        energies = energies + self.self_energy
        if not bool(torch.isfinite(energies).all()):
            self._raise_not_finite(positions.detach().index_select(0, self.atoms))
        return energies * self.energy_scale, gradient

    def _coordinates(self, positions: Tensor, boxvectors: Optional[Tensor]) -> Tuple[Tensor, Optional[Tensor]]:
        """The ML atoms' coordinates (Å, model dtype, relative to the anchor, made whole) and the cell (Å)."""
        if self.max_atom >= positions.shape[0]:
            raise ValueError(
                "ANI force: ML atom index " + str(self.max_atom) + " is out of range for a System of "
                + str(positions.shape[0]) + " particles"
            )
        x = positions.index_select(0, self.atoms)
        cell: Optional[Tensor] = None
        if self.periodic or self.make_whole:
            if boxvectors is None:
                raise ValueError("this ANI force is periodic: box vectors are required")
            box = boxvectors.detach()
            if self.periodic:
                x = x - x[self.anchor : self.anchor + 1]
                cell = box.to(self.probe.dtype) * self.length_scale
                # Checked here, not only in the model: an error raised deeper inside the module crashes
                # torch's error report (InterpreterStateImpl::callstack) once openmm-torch has frozen it.
                check_box(cell, self.fused.aev.radial_cutoff)
            else:
                x = whole_region(x, self.anchor, box.to(x.dtype))
        else:
            x = x - x[self.anchor : self.anchor + 1]
        return x.to(self.probe.dtype) * self.length_scale, cell

    def _raise_not_finite(self, x: Tensor) -> None:
        """Explain a non-finite ANI energy: name the ML atoms whose positions are not finite."""
        bad = (~torch.isfinite(x).all(1)).nonzero().flatten()
        if bad.shape[0] > 0:
            atoms: List[int] = self.atoms.index_select(0, bad).tolist()
            raise ValueError("positions of ML atoms " + str(sorted(atoms)) + " are NaN or infinite")
        raise ValueError("the ANI energy is NaN or infinite although all ML positions are finite")


class EnergyAndForces(torch.nn.Module):
    """``forward`` = :meth:`ANIForceModule.energy_and_forces`, for ``TorchForce.setOutputsForces(True)``.

    openmm-torch then reads the forces from the module instead of back-propagating: no autograd graph
    or pass at all. ``member_energies`` is passed through.
    """

    def __init__(self, ani: torch.nn.Module) -> None:
        super().__init__()
        self.ani = ani

    def forward(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        return self.ani.energy_and_forces(positions, boxvectors)

    @torch.jit.export
    def member_energies(self, positions: Tensor, boxvectors: Optional[Tensor] = None) -> Tensor:
        return self.ani.member_energies(positions, boxvectors)
