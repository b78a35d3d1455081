"""Ligand-specific active learning (``openmm-ani train refine``): see :mod:`.loop`.

==========  ==============================================================
``loop``    :class:`RefineSettings` and :func:`refine` (rounds, resume)
``rounds``  one round: sample, select, label, fine-tune, export, metrics
``dedup``   Kabsch RMSD and de-duplication of selected frames
``labelling``  PySCF labels of selected frames and of the replay set
``metrics``    errors (kcal/mol) and disagreement statistics
``cli``     the ``openmm-ani train refine`` command
==========  ==============================================================

The names below are imported on first use, so that registering the command (building the
``openmm-ani`` parser) imports neither torch nor the trainer.
"""

from typing import Any

__all__ = ["RefineSettings", "deduplicate", "final_model", "kabsch_rmsd", "refine"]

_WHERE = {"RefineSettings": "loop", "refine": "loop", "final_model": "loop", "deduplicate": "dedup",
          "kabsch_rmsd": "dedup"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
