"""Reading serialized Systems with TorchForces: ``openmm_ani.serialization.deserialize_system``.

Public name of :mod:`openmm_ani.openmm.serialization`.
"""

from .openmm.serialization import deserialize_system, deserialize_torch_force

__all__ = ["deserialize_system", "deserialize_torch_force"]
