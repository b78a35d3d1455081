"""openmm-ml plugin: openmm-ani's potentials under ``openmmml.MLPotential``.

openmm-ml discovers potentials through the ``openmmml.potentials`` entry-point group. This
package registers (see ``pyproject.toml``)

========================  ===========================================
name                      model
========================  ===========================================
``ani1ccx-openmm-ani``    bundled ANI-1ccx 8-model ensemble
``ani1x-openmm-ani``      bundled ANI-1x 8-model ensemble
``openmm-ani``            any model file or NeuroChem folder given as
                          ``MLPotential("openmm-ani", modelPath=...)``
========================  ===========================================

The ``-openmm-ani`` suffix keeps the names apart from openmm-ml's built-in (TorchANI-based)
``ani1ccx`` and ``ani2x``, so an existing script switches with one word::

    potential = MLPotential("ani1ccx-openmm-ani")   # was MLPotential("ani1ccx")
    system = potential.createSystem(topology)

Keyword arguments understood by ``MLPotential(...)``: ``modelIndex`` (one ensemble member),
``precision`` (``"single"``, default, or ``"double"``) and ``modelPath`` (for ``openmm-ani``).
``createSystem``/``createMixedSystem`` accept the same ``modelIndex``/``precision`` keywords,
overriding the constructor's, and the mechanical-embedding keywords openmm-ml passes on
(``linkAtomDistances``, ``mlLongRange``; see :meth:`OpenMMANIPotentialImpl.addForces`).

``createMixedSystem(..., interpolate=True)`` works: openmm-ml deep-copies the TorchForce into its
``CustomCVForce``, which the pinned OpenMM 8.4-8.5 + openmmtorch 1.5 stack supports; on a stack
where that copy would crash, :func:`~openmm_ani.openmm.openmmtorch.require_torchforce_copies`
raises first. Link atoms (openmm-ml >= 1.8) are placed by openmm-ml as virtual sites, which this
plugin evaluates like any other ML atom; under openmm-ml 1.7, which has none, a region cut
through bonds gets a warning pointing to :meth:`openmm_ani.ANIPotential.createMixedSystem`.

The classes implement openmm-ml's ``MLPotentialImplFactory``/``MLPotentialImpl`` interface by
duck typing rather than subclassing: openmm-ml imports this module while ``openmmml`` itself
is still being imported (entry points are loaded at the end of ``openmmml.mlpotential``), so
importing openmm-ml from here would be circular.
"""

import importlib.metadata
import re
import warnings
from typing import Any, Dict, Iterable, List, Optional

from .embedding.charge import warn_if_charged
from .openmmtorch import require_torchforce_copies
from .periodic import region_treatment
from .potential import ANIPotential
from .topology import topology_atomic_numbers

#: openmm-ml names registered by this package, and the bundled model of each (None: ``modelPath``).
REGISTERED_NAMES: Dict[str, Optional[str]] = {
    "ani1ccx-openmm-ani": "ani1ccx",
    "ani1x-openmm-ani": "ani1x",
    "openmm-ani": None,
}


#: Keywords ``addForces`` accepts: the potential's own and those openmm-ml's embedding passes on.
ACCEPTED_KEYWORDS = frozenset({"modelIndex", "precision", "linkAtomDistances", "mlLongRange", "embedding"})


def _openmmml_has_link_atoms() -> bool:
    """openmm-ml places link atoms itself from version 1.8 on."""
    try:
        version = importlib.metadata.version("openmmml")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = [int(p) for p in re.findall(r"\d+", version)[:2]]
    return tuple(parts + [0] * (2 - len(parts))) >= (1, 8)


def check_embedding_keywords(args: Dict[str, Any]) -> None:
    """Check the mechanical-embedding keywords openmm-ml passes to ``addForces``.

    Raises
    ------
    ValueError
        ``mlLongRange=True`` (ANI is short-ranged), an ``embedding`` other than
        ``"mechanical"`` (openmm-ml 1.7 has no other), or ``linkAtomDistances`` under an
        openmm-ml without link atoms (1.7: use ``ANIPotential.createMixedSystem`` instead).
    """
    if args.get("mlLongRange") not in (None, False):
        raise ValueError("mlLongRange=True: ANI has no long-range interactions (it is short-ranged, 5.2 Å)")
    if args.get("embedding", "mechanical") != "mechanical":
        raise ValueError(f"embedding={args['embedding']!r}: openmm-ani potentials support the 'mechanical' embedding only")
    if args.get("linkAtomDistances") and not _openmmml_has_link_atoms():
        raise ValueError(
            "linkAtomDistances: this openmm-ml has no link atoms (they arrived in openmm-ml 1.8); "
            "use openmm_ani.ANIPotential(...).createMixedSystem(..., linkAtomDistances=...)"
        )


def _warn_cut_bonds(topology: Any, atoms: List[int]) -> None:
    selected = set(atoms)
    cut = [(b.atom1.index, b.atom2.index) for b in topology.bonds() if (b.atom1.index in selected) != (b.atom2.index in selected)]
    if cut:
        warnings.warn(
            f"the ML region is cut through bonds {cut[:5]}{' ...' if len(cut) > 5 else ''} and this openmm-ml (< 1.8) "
            "adds no link atoms; openmm_ani.ANIPotential(...).createMixedSystem caps them with hydrogen",
            UserWarning,
            stacklevel=3,
        )


class OpenMMANIPotentialImpl:
    """openmm-ml ``MLPotentialImpl`` backed by :class:`openmm_ani.ANIPotential`.

    Parameters
    ----------
    model
        Bundled model name or model file/NeuroChem folder path.
    modelIndex
        ``None`` for the ensemble, or one member's index.
    precision
        ``"single"`` or ``"double"``.
    """

    def __init__(self, model: str, modelIndex: Optional[int] = None, precision: str = "single") -> None:
        self.model = model
        self.modelIndex = modelIndex
        self.precision = precision
        self._potentials: Dict[Any, ANIPotential] = {}

    def _potential(self, modelIndex: Optional[int], precision: str) -> ANIPotential:
        key = (modelIndex, precision)
        if key not in self._potentials:
            self._potentials[key] = ANIPotential(self.model, model_index=modelIndex, precision=precision)
        return self._potentials[key]

    def addForces(
        self,
        topology: Any,
        system: Any,
        atoms: Optional[Iterable[int]],
        forceGroup: int,
        **args: Any,
    ) -> None:
        """Add the ANI TorchForce for ``atoms`` (all atoms when ``None``) to ``system``.

        Called by openmm-ml's ``createSystem`` and its mechanical embedding. A periodic
        topology makes the force periodic for the whole system, and ``make_whole`` (the ML
        region as an isolated molecule) for a subset. With openmm-ml 1.8 link atoms, ``atoms``
        ends with the hydrogen caps (virtual sites) openmm-ml added to the topology and System.

        Besides ``modelIndex`` and ``precision``, the keywords openmm-ml's mechanical embedding
        passes through are accepted: ``linkAtomDistances`` (used by openmm-ml 1.8 itself;
        rejected under 1.7, which has no link atoms), ``mlLongRange`` (``False``/``None``:
        ANI has no long-range part) and, under openmm-ml 1.7, ``embedding="mechanical"``.

        Raises
        ------
        ValueError
            Unknown keywords, or embedding options ANI cannot honour.
        openmm_ani.openmm.openmmtorch.TorchForceCopyError
            For an interpolating mixed system (openmm-ml deep-copies the force; it calls this
            method with an empty temporary System) where the installed OpenMM cannot copy a
            TorchForce.
        """
        unknown = sorted(set(args) - ACCEPTED_KEYWORDS)
        if unknown:
            raise ValueError(f"unknown argument(s) for openmm-ani potentials: {', '.join(unknown)}")
        check_embedding_keywords(args)
        potential = self._potential(args.get("modelIndex", self.modelIndex), args.get("precision", self.precision))
        atom_list: Optional[List[int]] = None if atoms is None else [int(i) for i in atoms]
        numbers = topology_atomic_numbers(topology, atom_list)
        treatment = region_treatment(topology.getPeriodicBoxVectors() is not None, subset=atom_list is not None)
        if system.getNumParticles() < topology.getNumAtoms():
            # openmm-ml (1.7 and 1.8) builds the ML forces of an interpolating mixed system in an empty
            # temporary System and deep-copies them into its CustomCVForce
            require_torchforce_copies()
        if atom_list is not None:
            if not _openmmml_has_link_atoms():
                _warn_cut_bonds(topology, atom_list)
            if system.getNumParticles() >= topology.getNumAtoms():  # not openmm-ml's empty temporary System
                region = set(atom_list)
                cut = any((a.index in region) != (b.index in region) for a, b in topology.bonds())
                warn_if_charged(system, [i for i in atom_list if i < topology.getNumAtoms()], cut=cut, stacklevel=4)
        force = potential.createForce(numbers, atoms=atom_list, periodic=treatment.periodic, make_whole=treatment.make_whole)
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getSupportedEmbeddings(self) -> List[str]:
        """No potential-specific embeddings; openmm-ml's generic ``mechanical`` one applies."""
        return []

    def getMLLongRange(self) -> Optional[bool]:
        """ANI is short-ranged (5.2 Å cutoff): ML interactions are local."""
        return False


class OpenMMANIPotentialImplFactory:
    """openmm-ml ``MLPotentialImplFactory`` for the names in :data:`REGISTERED_NAMES`."""

    def createImpl(self, name: str, **args: Any) -> OpenMMANIPotentialImpl:
        """Create the implementation of potential ``name``.

        Raises
        ------
        ValueError
            For a name this factory does not serve, a missing ``modelPath`` for
            ``openmm-ani``, or unknown arguments.
        """
        if name not in REGISTERED_NAMES:
            raise ValueError(f"openmm-ani does not provide an openmm-ml potential named {name!r}")
        unknown = sorted(set(args) - {"modelIndex", "precision", "modelPath"})
        if unknown:
            raise ValueError(f"unknown argument(s) for {name}: {', '.join(unknown)}")
        model = REGISTERED_NAMES[name]
        if model is None:
            if "modelPath" not in args:
                raise ValueError(f"{name} needs modelPath= (a model file or NeuroChem folder)")
            model = str(args["modelPath"])
        elif "modelPath" in args:
            raise ValueError(f"{name} uses the bundled {model} model; use 'openmm-ani' with modelPath= for a file")
        return OpenMMANIPotentialImpl(model, args.get("modelIndex"), args.get("precision", "single"))
