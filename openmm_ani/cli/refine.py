"""``openmm-ani refine``: ligand-specific active learning, the same command as ``openmm-ani train refine``
(:mod:`openmm_ani.training.refine.cli`).

The training package is imported only when the parser is built, so ``import openmm_ani.cli``
loads no training code.
"""

from typing import Any


def register(subparsers: Any) -> None:
    """Add the top-level ``refine`` subcommand (arguments and function of ``train refine``)."""
    from ..training.refine import cli as refine_cli

    refine_cli.register(subparsers)
