"""The bundled ANI models and the loader: ``openmm_ani.models.load("ani1ccx")``.

This is the public name of :mod:`openmm_ani.formats.registry` (the registry lives with the
model formats it reads).
"""

from .formats.registry import MODELS, RegisteredModel, available_models, bundled_path, load, load_model_spec

__all__ = ["MODELS", "RegisteredModel", "available_models", "bundled_path", "load", "load_model_spec"]
