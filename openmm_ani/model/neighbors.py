"""Neighbour search: the atom pairs closer than a cutoff, with their distance vectors.

Two strategies, chosen by system size, return the same half list (each pair once):

* :func:`all_pairs` compares every pair of a (padded) batch, open or periodic (minimum
  image); it is the cheapest choice up to about a thousand atoms.
* :func:`cell_list_pairs` bins atoms into cells at least one cutoff wide and compares
  only neighbouring cells, so cost grows linearly with the atom count. It handles
  orthorhombic and triclinic periodic boxes with the minimum-image convention (any
  image within the cutoff is found; coordinates need not be wrapped), and open
  systems through an enclosing pseudo-box too large for images to matter.

Lengths are in Å. Atom indices are flat: atom ``n`` of molecule ``b`` is ``b * N + n``.
Distance vectors point from the first atom of a pair to the second and carry gradients
with respect to the input coordinates.
"""

from typing import List, Optional, Tuple

import torch
from torch import Tensor

#: Default size (atoms per molecule) up to which open molecules use :func:`all_pairs`.
ALL_PAIRS_MAX_ATOMS: int = 384


def all_pairs(
    species: Tensor, coordinates: Tensor, cutoff: float, cell: Optional[Tensor] = None
) -> Tuple[Tensor, Tensor, Tensor]:
    """All pairs within ``cutoff`` in a padded batch, open or periodic.

    Parameters
    ----------
    species
        ``[B, N]`` element indices, -1 for padding.
    coordinates
        ``[B, N, 3]`` positions in Å.
    cutoff
        Cutoff radius in Å.
    cell
        Optional ``[3, 3]`` box vectors (rows, Å) whose perpendicular widths are all at least
        ``2 * cutoff``. Each pair then takes its minimum image, found by rounding fractional
        coordinates: any image closer than the cutoff has every fractional component below
        one half (the component is at most ``distance / width``), so it is the one rounding picks.

    Returns
    -------
    first, second, vectors
        ``[P]`` flat indices of the first and second atom of each pair and
        ``[P, 3]`` vectors ``r_second - r_first`` in Å.
    """
    num_atoms = species.shape[1]
    upper = torch.triu_indices(num_atoms, num_atoms, 1, device=species.device)
    vectors = coordinates[:, upper[1]] - coordinates[:, upper[0]]
    if cell is not None:
        with torch.no_grad():
            box = cell.detach().to(vectors.dtype)
            shifts = torch.round(vectors.detach() @ torch.linalg.inv(box)) @ box
        vectors = vectors - shifts
    with torch.no_grad():
        close = vectors.detach().pow(2).sum(-1) < cutoff * cutoff
        real = (species[:, upper[0]] >= 0) & (species[:, upper[1]] >= 0)
        molecule, pair = (close & real).nonzero().unbind(1)
    offset = molecule * num_atoms
    return offset + upper[0, pair], offset + upper[1, pair], vectors[molecule, pair]


def box_widths(cell: Tensor) -> Tensor:
    """Perpendicular widths (Å) of the box spanned by the rows of ``cell`` ``[3, 3]``."""
    volume = torch.linalg.det(cell).abs()
    a, b, c = cell[0], cell[1], cell[2]
    areas = torch.stack(
        [torch.linalg.vector_norm(torch.linalg.cross(b, c)), torch.linalg.vector_norm(torch.linalg.cross(c, a)),
         torch.linalg.vector_norm(torch.linalg.cross(a, b))]
    )
    return volume / areas


def check_box(cell: Tensor, cutoff: float) -> None:
    """Raise ``ValueError`` unless every perpendicular width of ``cell`` is at least ``2 * cutoff``."""
    if cell.shape != (3, 3):
        raise ValueError("cell must have shape [3, 3] (box vectors as rows, Å), got " + str(list(cell.shape)))
    if not bool(torch.isfinite(cell).all()):
        raise ValueError("cell contains NaN or infinite values")
    widths = box_widths(cell.detach())
    if bool((widths < 2.0 * cutoff).any()):
        values: List[float] = widths.tolist()
        raise ValueError(
            "periodic box is too small: its perpendicular widths are " + str(values)
            + " Å but the model's cutoff " + str(cutoff) + " Å needs at least " + str(2.0 * cutoff)
            + " Å along every axis"
        )


def _cell_offsets(device: torch.device) -> Tensor:
    r = torch.arange(-1, 2, device=device)
    return torch.stack(torch.meshgrid(r, r, r, indexing="ij"), dim=-1).reshape(27, 3)


def cell_list_pairs(
    positions: Tensor, real: Tensor, cell: Tensor, cutoff: float
) -> Tuple[Tensor, Tensor, Tensor]:
    """Pairs within ``cutoff`` of one periodic system, found with a cell list.

    Parameters
    ----------
    positions
        ``[N, 3]`` positions in Å, wrapped or not.
    real
        ``[N]`` bool, False for padding atoms.
    cell
        ``[3, 3]`` box vectors (rows) in Å; every perpendicular width must be at least
        ``2 * cutoff`` (checked by the caller with :func:`check_box`).
    cutoff
        Cutoff radius in Å.

    Returns
    -------
    first, second, vectors
        ``[P]`` atom indices and ``[P, 3]`` minimum-image vectors ``r_second - r_first`` (Å).
    """
    device = positions.device
    num_atoms = positions.shape[0]
    with torch.no_grad():
        box = cell.detach()
        frac = positions.detach() @ torch.linalg.inv(box)
        image = torch.floor(frac)
        frac = frac - image
        counts3 = torch.floor(box_widths(box) / cutoff).long().clamp(min=1)
        nx, ny, nz = int(counts3[0]), int(counts3[1]), int(counts3[2])
        num_cells = nx * ny * nz
        cell3 = torch.minimum(torch.floor(frac * counts3.to(frac.dtype)).long(), counts3 - 1)
        cell_of_atom = (cell3[:, 0] * ny + cell3[:, 1]) * nz + cell3[:, 2]
        cell_of_atom = torch.where(real, cell_of_atom, torch.full_like(cell_of_atom, num_cells))
        order = torch.argsort(cell_of_atom)
        occupancy = torch.bincount(cell_of_atom, minlength=num_cells + 1)
        start = torch.cumsum(occupancy, 0) - occupancy
        sorted_cells = cell_of_atom[order]
        rank = torch.arange(num_atoms, device=device) - start[sorted_cells]
        width = int(occupancy[:num_cells].max()) if num_cells > 0 else 0
        content = torch.full((num_cells + 1, max(width, 1)), -1, dtype=torch.long, device=device)
        keep = sorted_cells < num_cells
        content[sorted_cells[keep], rank[keep]] = order[keep]

        neighbor3 = cell3.unsqueeze(1) + _cell_offsets(device).unsqueeze(0)  # [N, 27, 3]
        wrap = torch.div(neighbor3, counts3, rounding_mode="floor")
        neighbor3 = neighbor3 - wrap * counts3
        neighbor = (neighbor3[..., 0] * ny + neighbor3[..., 1]) * nz + neighbor3[..., 2]
        neighbor = torch.where(real.unsqueeze(1), neighbor, torch.full_like(neighbor, num_cells))
        candidates = content[neighbor]  # [N, 27, W]
        shifts = wrap.to(box.dtype) @ box  # [N, 27, 3]
        wrapped = positions.detach() - image @ box
        first = torch.arange(num_atoms, device=device).view(-1, 1, 1).expand_as(candidates)
        valid = candidates > first
        safe = torch.where(valid, candidates, torch.zeros_like(candidates))
        vec = wrapped[safe] + shifts.unsqueeze(2) - wrapped.view(-1, 1, 1, 3)
        valid = valid & (vec.pow(2).sum(-1) < cutoff * cutoff)
        atom, offset, slot = valid.nonzero().unbind(1)
        second = candidates[atom, offset, slot]
        shift = shifts[atom, offset]
        image_shift = (image[second] - image[atom]) @ box
    vectors = positions[second] - positions[atom] + (shift - image_shift)
    return atom, second, vectors


def neighbor_pairs(
    species: Tensor, coordinates: Tensor, cutoff: float, cell: Optional[Tensor] = None, all_pairs_max_atoms: int = 384
) -> Tuple[Tensor, Tensor, Tensor]:
    """Half neighbour list of a padded batch, open or periodic.

    Parameters
    ----------
    species
        ``[B, N]`` element indices, -1 for padding.
    coordinates
        ``[B, N, 3]`` positions in Å.
    cutoff
        Cutoff radius in Å.
    cell
        Optional ``[3, 3]`` box vectors (rows, Å), shared by all molecules of the batch.
    all_pairs_max_atoms
        Systems with at most this many atoms (per molecule) use :func:`all_pairs`, larger
        ones a cell list. With a cell, every box width must be at least ``2 * cutoff``.

    Returns
    -------
    first, second, vectors
        ``[P]`` flat atom indices (``b * N + n``) and ``[P, 3]`` vectors in Å.
    """
    batch, num_atoms = species.shape[0], species.shape[1]
    if num_atoms <= all_pairs_max_atoms:
        return all_pairs(species, coordinates, cutoff, cell)
    firsts = []
    seconds = []
    vectors = []
    for b in range(batch):
        real = species[b] >= 0
        if cell is None:
            box, origin = _enclosing_box(coordinates[b].detach(), real, cutoff)
            i, j, v = cell_list_pairs(coordinates[b] - origin, real, box, cutoff)
        else:
            i, j, v = cell_list_pairs(coordinates[b], real, cell, cutoff)
        firsts.append(i + b * num_atoms)
        seconds.append(j + b * num_atoms)
        vectors.append(v)
    return torch.cat(firsts), torch.cat(seconds), torch.cat(vectors)


def _enclosing_box(positions: Tensor, real: Tensor, cutoff: float) -> Tuple[Tensor, Tensor]:
    """An orthorhombic pseudo-box around an open system wide enough that no image is in range."""
    inside = positions[real]
    if inside.shape[0] == 0:
        inside = torch.zeros(1, 3, dtype=positions.dtype, device=positions.device)
    low = inside.min(0).values
    high = inside.max(0).values
    edges = (high - low) + 2.0 * cutoff + 1.0
    origin = low - cutoff
    return torch.diag(edges), origin
