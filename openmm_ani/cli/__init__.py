"""The ``openmm-ani`` command line (also ``python -m openmm_ani``): one module per command.

==============  ==========================================================
``energy``      single points / trajectory rescoring with ensemble disagreement
``simulate``    Langevin MD (pure ANI, or ML/MM with ``--ml-selection``)
``export``      TorchScript file for ``openmmtorch.TorchForce``
``benchmark``   MD speed next to openmm-ml
``fe_correct``  the MM -> ML/MM binding free-energy correction
``train``       the training subpackage's commands
``refine``      active learning for one ligand (= ``train refine``)
``info``        versions, platforms, whether the C++ kernels are built
==============  ==========================================================

Each command module registers its arguments and maps them onto library functions
(:mod:`openmm_ani.simulation`, :mod:`openmm_ani.freeenergy`, ...); :mod:`.common` holds the
error convention: one ``openmm-ani: error: ...`` line and exit status 1. Heavy imports
happen inside the commands, so ``--help`` stays fast.
"""

import sys
from typing import Optional, Sequence

from . import benchmark, energy, export, fe_correct, info, refine, simulate, train
from .common import (
    EXIT_BROKEN_PIPE, EXIT_FAILURE, EXIT_INTERRUPTED, PROG, ArgumentParser, CommandError, emit, error_line, expected_errors,
    quiet_stdout,
)

#: The command modules, in the order ``--help`` lists them.
COMMANDS = (energy, simulate, export, benchmark, fe_correct, train, refine, info)


def build_parser() -> ArgumentParser:
    """The argument parser with all subcommands."""
    from .. import __version__

    parser = ArgumentParser(prog=PROG, description="ANI neural-network potentials for OpenMM")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``openmm-ani``; returns the exit status.

    Ctrl-C at any point, start-up included (building the parser, a command's imports), ends
    with the one line ``openmm-ani: interrupted`` and exit status 130.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        emit(f"{PROG}: interrupted", sys.stderr)
        return EXIT_INTERRUPTED


def import_the_stack() -> None:
    """Import torch, OpenMM and openmm-torch with Ctrl-C deferred until they are loaded.

    A ``KeyboardInterrupt`` raised inside an extension module's import can leave it half
    initialised (another error and a traceback follow), and CPython 3.11 then records it as
    unhandled and ends the process by SIGINT at exit (status -2) even after :func:`main` caught
    it. So the interrupt waits for these imports (about 1.5 s at most) and is raised here, in
    Python code, afterwards: one line and status 130 as at any other moment.
    """
    from ..interrupts import deferred_interrupts

    with deferred_interrupts() as request:
        import openmm  # noqa: F401
        import torch  # noqa: F401  (before openmm-torch)

        from ..openmm.openmmtorch import import_openmmtorch

        import_openmmtorch()
    if request.requested:
        raise KeyboardInterrupt


def _run(argv: Optional[Sequence[str]]) -> int:
    """Parse ``argv`` and run its command (see :func:`main`)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version (0) and usage errors (1, already reported)
        return int(stop.code or 0)
    from ..thirdparty import quiet_third_party

    quiet_third_party()  # other packages' banners and notices stay off the output (see openmm_ani.thirdparty)
    import_the_stack()
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # to main(), before expected_errors() runs: it imports the OpenMM layer, whose import
        raise                  # the interrupt may have cut short (torch half-initialised: another error, a traceback)
    except BrokenPipeError:  # the reader of stdout went away (`openmm-ani energy ... | head -2`): stop quietly
        quiet_stdout()
        return EXIT_BROKEN_PIPE
    except expected_errors() as error:
        emit(f"{PROG}: error: {error_line(error)}", sys.stderr)
        return EXIT_FAILURE


__all__ = ["CommandError", "build_parser", "main"]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
