"""``openmm-ani train``: the training subpackage's commands (:mod:`openmm_ani.training.cli`).

The training package is imported only when the parser is built, so ``import openmm_ani.cli``
loads no training code.
"""

from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``train`` subcommand and its own subcommands."""
    from ..training import cli as training_cli

    training_cli.register(subparsers)
