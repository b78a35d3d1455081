"""Model formats: the format-independent :class:`ModelSpec`, its readers and writers, and the
registry of bundled models.

================  ==============================================================
``spec``          :class:`ModelSpec` and :func:`build_model` (spec -> ANIModel)
``native``        openmm-ani's ``.npz`` model file (read/write)
``neurochem``     NeuroChem model folders (the published ANI releases; read)
``registry``      bundled models by name, and :func:`load` (``openmm_ani.models``)
================  ==============================================================

Depends on :mod:`openmm_ani.model` only; never imports OpenMM.
"""

from .native import load_spec, save
from .neurochem import read_folder
from .registry import available_models, load, load_model_spec
from .spec import LayerSpec, ModelSpec, build_model, check_member_index, spec_from_model

__all__ = [
    "LayerSpec", "ModelSpec", "available_models", "build_model", "check_member_index", "load", "load_model_spec",
    "load_spec", "read_folder", "save", "spec_from_model",
]
