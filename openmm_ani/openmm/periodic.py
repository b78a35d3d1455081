"""The periodic treatment of an ML region: one decision, one geometry helper.

A System's ML atoms are evaluated by ANI in one of three ways:

* **open** (no box): an isolated molecule;
* **periodic** (a box, and *every* particle is ML — a pure ANI box): ANI sees the box and
  all periodic images within its cutoff (box widths >= 2 x cutoff);
* **make_whole** (a box, and the ML atoms are a subset — an ML ligand in MM water): the ML
  atoms are made whole by the minimum image from the region's first atom and evaluated as
  an isolated molecule. ML atoms never interact with periodic images of the ML region
  through ANI. The region must span less than half the box along each box vector.

:func:`region_treatment` is the only place that makes this decision; every entry point (the
potential's ``createSystem``/``export``, the reporter, the command line, the openmm-ml plugin)
calls it.
"""

from typing import List, NamedTuple

import torch
from torch import Tensor

#: Accepted values of the ``periodic`` option of the command line.
PERIODIC_OPTIONS = ("auto", "yes", "no")


class RegionTreatment(NamedTuple):
    """How ANI treats the box for an ML region.

    Attributes
    ----------
    periodic
        Full periodic boundary conditions (a pure ANI box).
    make_whole
        Make the region whole and evaluate it as an isolated molecule.
    """

    periodic: bool
    make_whole: bool

    @property
    def uses_box(self) -> bool:
        """Whether the force needs the box vectors."""
        return self.periodic or self.make_whole


def region_treatment(has_box: bool, subset: bool, option: str = "auto") -> RegionTreatment:
    """The periodic treatment of an ML region.

    Parameters
    ----------
    has_box
        The topology or structure has periodic box vectors.
    subset
        The ML atoms are a subset of the System's particles (ML/MM), rather than all of them.
    option
        ``"auto"`` (use the box when there is one), ``"yes"`` (require a box) or ``"no"``
        (ignore any box: an isolated molecule).

    Returns
    -------
    RegionTreatment

    Raises
    ------
    ValueError
        For ``option="yes"`` without a box, or an unknown option.
    """
    if option not in PERIODIC_OPTIONS:
        raise ValueError(f"periodic option must be one of {', '.join(PERIODIC_OPTIONS)}, got {option!r}")
    if option == "yes" and not has_box:
        raise ValueError("periodic treatment requested but the input has no box vectors")
    use_box = has_box and option != "no"
    return RegionTreatment(periodic=use_box and not subset, make_whole=use_box and subset)


def minimum_image(vectors: Tensor, box: Tensor) -> Tensor:
    """Minimum-image ``vectors`` ``[n, 3]`` in an OpenMM reduced (lower-triangular) box ``[3, 3]``.

    Any units, as long as both arguments share them.
    """
    vectors = vectors - box[2] * torch.round(vectors[:, 2:3] / box[2, 2])
    vectors = vectors - box[1] * torch.round(vectors[:, 1:2] / box[1, 1])
    vectors = vectors - box[0] * torch.round(vectors[:, 0:1] / box[0, 0])
    return vectors


def make_whole(positions: Tensor, anchor: int, box: Tensor) -> Tensor:
    """Positions ``[n, 3]`` of a region made whole around atom ``anchor``, relative to it.

    Every atom is placed at the minimum image of its vector from the anchor, and the result
    is expressed relative to the anchor's position (the anchor sits at the origin), which
    keeps the numbers small before a cast to single precision.

    Raises
    ------
    ValueError
        If the whole region spans half a box vector or more along any box vector: the
        minimum image is then ambiguous and the region may have been folded.
    """
    whole = minimum_image(positions - positions[anchor : anchor + 1], box)
    fractional = whole @ torch.linalg.inv(box)
    span = fractional.amax(0) - fractional.amin(0)
    if bool((span >= 0.5).any()):
        values: List[float] = span.tolist()
        raise ValueError(
            "the ML region spans fractions " + str(values)
            + " of the box vectors; it must span less than half the box along each of them to be made whole"
        )
    return whole
