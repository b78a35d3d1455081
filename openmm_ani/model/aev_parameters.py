"""Hyper-parameters of the ANI atomic environment vector, and their JSON form.

One definition used by the AEV computer, the model file formats and the training
configuration. Lengths are in Å, ``Eta`` in Å^-2, angles in radians.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, Mapping, Tuple

#: Fields stored in files, in this order.
_SERIALISED_FIELDS: Tuple[str, ...] = (
    "radial_cutoff", "angular_cutoff", "radial_eta", "radial_shifts",
    "angular_eta", "angular_zeta", "angular_shifts", "angle_sections",
)
#: The fields that are lists.
_LIST_FIELDS = frozenset(_SERIALISED_FIELDS[2:])


@dataclass(frozen=True)
class AEVParameters:
    """Hyper-parameters of an ANI AEV (lengths in Å, ``Eta*`` in Å^-2).

    Attributes
    ----------
    radial_cutoff, angular_cutoff
        ``Rcr`` and ``Rca``.
    radial_eta, radial_shifts
        ``EtaR`` and ``ShfR``.
    angular_eta, angular_zeta, angular_shifts, angle_sections
        ``EtaA``, ``Zeta``, ``ShfA`` and ``ShfZ`` (radians).
    num_species
        Number of elements of the model.
    """

    radial_cutoff: float
    angular_cutoff: float
    radial_eta: Tuple[float, ...]
    radial_shifts: Tuple[float, ...]
    angular_eta: Tuple[float, ...]
    angular_zeta: Tuple[float, ...]
    angular_shifts: Tuple[float, ...]
    angle_sections: Tuple[float, ...]
    num_species: int

    @property
    def radial_sublength(self) -> int:
        """Radial terms per neighbour element."""
        return len(self.radial_eta) * len(self.radial_shifts)

    @property
    def angular_sublength(self) -> int:
        """Angular terms per neighbour-element pair."""
        return len(self.angular_eta) * len(self.angular_zeta) * len(self.angular_shifts) * len(self.angle_sections)

    @property
    def length(self) -> int:
        """Length of the AEV."""
        pairs = self.num_species * (self.num_species + 1) // 2
        return self.num_species * self.radial_sublength + pairs * self.angular_sublength

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first hyper-parameter that cannot define an AEV.

        Cutoffs must be finite and positive with ``angular_cutoff <= radial_cutoff`` (the
        neighbour list is built for the radial cutoff); every list non-empty and finite;
        ``Eta``/``Zeta`` positive; at least one element.
        """
        for name in ("radial_cutoff", "angular_cutoff"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"AEV parameter {name} must be a positive length in Å, got {value}")
        if self.angular_cutoff > self.radial_cutoff:
            raise ValueError(
                f"AEV angular_cutoff {self.angular_cutoff} Å exceeds radial_cutoff {self.radial_cutoff} Å"
            )
        for name in ("radial_eta", "radial_shifts", "angular_eta", "angular_zeta", "angular_shifts", "angle_sections"):
            values = getattr(self, name)
            if len(values) == 0 or not all(math.isfinite(v) for v in values):
                raise ValueError(f"AEV parameter {name} must be a non-empty list of finite numbers, got {list(values)}")
        for name in ("radial_eta", "angular_eta", "angular_zeta"):
            if any(v <= 0.0 for v in getattr(self, name)):
                raise ValueError(f"AEV parameter {name} must be positive, got {list(getattr(self, name))}")
        if self.num_species < 1:
            raise ValueError(f"AEV needs at least one element, got num_species={self.num_species}")

    def to_dict(self) -> Dict[str, Any]:
        """JSON-ready form (lengths in Å, angles in radians); ``num_species`` is left out,
        since files store it as their list of elements."""
        return {name: (list(getattr(self, name)) if name in _LIST_FIELDS else float(getattr(self, name)))
                for name in _SERIALISED_FIELDS}

    @staticmethod
    def from_dict(data: Mapping[str, Any], num_species: int) -> "AEVParameters":
        """Inverse of :meth:`to_dict`, validated.

        Raises
        ------
        ValueError
            A missing key (named) or values that cannot define an AEV (see :meth:`validate`).
        """
        missing = [name for name in _SERIALISED_FIELDS if name not in data]
        if missing:
            raise ValueError(f"AEV parameters: key(s) {', '.join(missing)} missing")
        try:
            values = {
                name: (tuple(float(v) for v in data[name]) if name in _LIST_FIELDS else float(data[name]))
                for name in _SERIALISED_FIELDS
            }
        except (TypeError, ValueError) as error:
            raise ValueError(f"AEV parameters: not numbers ({error})") from None
        parameters = AEVParameters(num_species=int(num_species), **values)
        parameters.validate()
        return parameters
