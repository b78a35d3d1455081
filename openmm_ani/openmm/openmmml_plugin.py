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
overriding the constructor's.

The classes implement openmm-ml's ``MLPotentialImplFactory``/``MLPotentialImpl`` interface by
duck typing rather than subclassing: openmm-ml imports this module while ``openmmml`` itself
is still being imported (entry points are loaded at the end of ``openmmml.mlpotential``), so
importing openmm-ml from here would be circular.
"""

from typing import Any, Dict, Iterable, List, Optional

from .periodic import region_treatment
from .potential import ANIPotential
from .topology import topology_atomic_numbers

#: openmm-ml names registered by this package, and the bundled model of each (None: ``modelPath``).
REGISTERED_NAMES: Dict[str, Optional[str]] = {
    "ani1ccx-openmm-ani": "ani1ccx",
    "ani1x-openmm-ani": "ani1x",
    "openmm-ani": None,
}


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
        region as an isolated molecule) for a subset.
        """
        unknown = sorted(set(args) - {"modelIndex", "precision"})
        if unknown:
            raise ValueError(f"unknown argument(s) for openmm-ani potentials: {', '.join(unknown)}")
        potential = self._potential(args.get("modelIndex", self.modelIndex), args.get("precision", self.precision))
        atom_list: Optional[List[int]] = None if atoms is None else [int(i) for i in atoms]
        numbers = topology_atomic_numbers(topology, atom_list)
        treatment = region_treatment(topology.getPeriodicBoxVectors() is not None, subset=atom_list is not None)
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
