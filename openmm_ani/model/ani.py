"""The ANI model: species mapping -> AEV -> atomic networks -> self energies.

:class:`ANIModel` composes the four stages (each in its own module) and holds no
physics of its own. Units: positions and cells in Å, energies in Ha.
"""

from typing import Final, List, Optional, Tuple

import torch
from torch import Tensor

from .aev import AEVComputer
from .fused import FusedANI
from .networks import AtomicNetworks
from .self_energies import SelfEnergies
from .species import SpeciesMapper

#: Query-by-committee threshold of ANI-1x's active learning, kcal/mol per sqrt(atoms): a
#: configuration whose member-energy standard deviation divided by sqrt(number of atoms) exceeds
#: it was one the ensemble did not know, and was labelled and added to the training set (Smith et
#: al., J. Chem. Phys. 148, 241733 (2018)). Used by the training's selection and the free-energy verdict.
QBC_THRESHOLD_KCAL_PER_SQRT_ATOM: Final[float] = 0.23


def check_inputs(atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor]) -> None:
    """Raise ``ValueError`` for inputs of the wrong shape or type, or non-finite values.

    Expected: ``atomic_numbers`` an integer tensor ``[B, N]``, ``positions`` a floating
    tensor ``[B, N, 3]`` (Å), ``cell`` ``None`` or ``[3, 3]`` (Å).
    """
    if atomic_numbers.dim() != 2:
        raise ValueError(
            "atomic_numbers must have shape [B, N] (molecules, atoms), got " + str(list(atomic_numbers.shape))
        )
    if atomic_numbers.is_floating_point() or atomic_numbers.is_complex():
        raise ValueError("atomic_numbers must be an integer tensor (torch.long)")
    expected = [atomic_numbers.shape[0], atomic_numbers.shape[1], 3]
    if list(positions.shape) != expected:
        raise ValueError(
            "positions must have shape [B, N, 3] = " + str(expected) + " to match atomic_numbers, got "
            + str(list(positions.shape))
        )
    if not positions.is_floating_point():
        raise ValueError("positions must be a floating-point tensor in Å")
    finite = torch.isfinite(positions).all(-1) | (atomic_numbers <= 0)
    if not bool(finite.all()):
        bad: List[List[int]] = (~finite).nonzero().tolist()
        raise ValueError("positions contain NaN or infinite values at (molecule, atom) " + str(bad))
    if cell is not None:
        if list(cell.shape) != [3, 3]:
            raise ValueError("cell must have shape [3, 3] (box vectors as rows, Å), got " + str(list(cell.shape)))


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"``/``"float64"``/... for messages (TorchScript prints a dtype as a number)."""
    names = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
    for name, value in names.items():
        if dtype == value:
            return name
    return "a non-float type"


def check_dtype(positions: Tensor, model_dtype: torch.dtype) -> None:
    """Raise ``ValueError`` in one line when ``positions`` and the model's weights differ in floating-point type."""
    if positions.dtype != model_dtype:
        raise ValueError(
            "positions are " + dtype_name(positions.dtype) + " but the model's weights are " + dtype_name(model_dtype)
            + ": convert the positions (positions.to(torch." + dtype_name(model_dtype) + ")) or the model (model.to(torch."
            + dtype_name(positions.dtype) + "))"
        )


class ANIModel(torch.nn.Module):
    """An ANI potential (one model or an ensemble) as a ``torch.nn.Module``.

    Parameters
    ----------
    elements
        Element symbols in the model's order.
    aev
        The AEV computer.
    networks
        The atomic networks of ``M`` ensemble members.
    self_energies
        The self-energy shifter.
    name
        Name of the model, for messages.

    Examples
    --------
    >>> import torch, openmm_ani
    >>> model = openmm_ani.models.load("ani1ccx")
    >>> z = torch.tensor([[8, 1, 1]])
    >>> x = torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]], requires_grad=True)
    >>> energy = model(z, x)                     # [1], Ha
    >>> forces = -torch.autograd.grad(energy.sum(), x)[0]   # [1, 3, 3], Ha/Å
    >>> energy, forces = model.energies_and_forces(z, x)   # the same, in one pass, no autograd graph
    """

    num_models: Final[int]
    elements: Final[List[str]]
    name: Final[str]

    def __init__(
        self,
        elements: List[str],
        aev: AEVComputer,
        networks: AtomicNetworks,
        self_energies: SelfEnergies,
        name: str = "ani",
    ) -> None:
        super().__init__()
        if networks.num_species != len(elements) or aev.num_species != len(elements):
            raise ValueError(
                f"model parts disagree on the number of elements: {len(elements)} symbols, "
                f"{aev.num_species} in the AEV, {networks.num_species} networks"
            )
        self.elements = list(elements)
        self.name = name
        self.num_models = networks.num_models
        self.species = SpeciesMapper(elements)
        self.aev = aev
        self.networks = networks
        self.self_energies = self_energies

    @property
    def cutoff(self) -> float:
        """The model's longest interaction range (radial cutoff), Å."""
        return self.aev.radial_cutoff

    def forward(self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """Energies of a padded batch.

        Parameters
        ----------
        atomic_numbers
            ``[B, N]`` atomic numbers, ``-1`` (or ``0``) for padding atoms.
        positions
            ``[B, N, 3]`` positions in Å.
        cell
            Optional ``[3, 3]`` periodic box vectors (rows) in Å.

        Returns
        -------
        Tensor
            ``[B]`` energies in Ha, the ensemble mean. Forces follow by autograd.
        """
        return self.member_energies(atomic_numbers, positions, cell).mean(0)

    @torch.jit.export
    def member_energies(self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """Energies of each ensemble member, ``[M, B]`` in Ha (same inputs as ``forward``)."""
        check_inputs(atomic_numbers, positions, cell)
        check_dtype(positions, self.aev.eta_r.dtype)
        species = self.species(atomic_numbers)
        return self.species_member_energies(species, positions, cell)

    @torch.jit.export
    def species_member_energies(self, species: Tensor, positions: Tensor, cell: Optional[Tensor] = None) -> Tensor:
        """Like :meth:`member_energies` for element indices ``[B, N]`` (-1 padding), unchecked."""
        aev = self.aev(species, positions, cell)
        atomic = self.networks(species.reshape(-1), aev.reshape(-1, aev.shape[-1]))
        molecular = atomic.view(self.num_models, species.shape[0], species.shape[1]).sum(-1)
        return molecular + self.self_energies(species).to(molecular.dtype)

    @torch.jit.unused
    def energies_and_forces(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """Energies ``[B]`` (Ha, ensemble mean) and forces ``[B, N, 3]`` (Ha/Å) in one pass.

        Same inputs as ``forward``. The forces are the analytic negative gradient of the energy,
        computed with no autograd graph: by the C++ kernel on CPU when it is built
        (:mod:`openmm_ani.kernels`), otherwise by the analytic TorchScript path. The results carry no
        gradient (use ``forward`` and autograd to differentiate further, e.g. with respect to weights).
        Eager mode only (a scripted model differentiates ``forward`` with autograd).
        """
        check_inputs(atomic_numbers, positions, cell)
        check_dtype(positions, self.aev.eta_r.dtype)
        species = self.species(atomic_numbers)
        fused = self._fused_evaluator(positions)
        energies = []
        forces = []
        with torch.no_grad():
            box = None if cell is None else cell.detach().to(positions.dtype)
            for b in range(species.shape[0]):
                members, gradient = fused(positions[b].detach(), species[b], box, True)
                energies.append(members.mean())
                forces.append(-gradient)
            total = torch.stack(energies) + self.self_energies(species).to(torch.float64)
        return total.to(positions.dtype), torch.stack(forces)

    @torch.jit.unused
    def _fused_evaluator(self, positions: Tensor) -> FusedANI:
        """A :class:`FusedANI` over this model's own networks (not copied), cached per dtype and device.

        Kept out of the module tree (no state_dict entries) in the instance dictionary, and rebuilt when a
        weight changes (its copies of transposed weights would be stale).
        """
        weights = tuple((p.data_ptr(), p._version) for p in self.networks.parameters())
        key = (positions.dtype, positions.device, weights)
        cache = self.__dict__.setdefault("_fused_cache", {})
        if key not in cache:
            cache.clear()
            cache[key] = FusedANI(self.aev.parameters, list(self.networks.networks),
                                  use_kernel=None if positions.device.type == "cpu" else False).to(positions.device)
        return cache[key]

    @torch.jit.export
    def energies_and_std(
        self, atomic_numbers: Tensor, positions: Tensor, cell: Optional[Tensor] = None
    ) -> Tuple[Tensor, Tensor]:
        """Ensemble mean ``[B]`` and standard deviation ``[B]`` (Ha) of the energy.

        The standard deviation is the sample standard deviation over the ``M`` members
        (divisor ``M - 1``), the query-by-committee disagreement used to build the ANI
        data sets; zero for a single model.
        """
        members = self.member_energies(atomic_numbers, positions, cell)
        if self.num_models < 2:
            return members.mean(0), torch.zeros_like(members[0])
        return members.mean(0), members.std(0, unbiased=True)
