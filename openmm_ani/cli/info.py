"""``openmm-ani info``: what this installation runs with (versions, platforms, the C++ kernels)."""

import argparse
import platform
import sys
from typing import Any

from .common import emit


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    info = subparsers.add_parser("info", help="versions, OpenMM platforms, and whether the fast C++ kernels are built")
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one ``name: value`` line per component."""
    import openmm
    import torch

    from .. import __version__, kernels
    from ..openmm.openmmtorch import import_openmmtorch
    from ..openmm.platforms import platform_names

    openmmtorch = import_openmmtorch()
    emit(f"openmm-ani: {__version__}")
    emit(f"python: {platform.python_version()} ({sys.executable})")
    emit(f"torch: {torch.__version__}")
    emit(f"openmm: {openmm.__version__}")
    emit(f"openmmtorch: {_distribution_version('openmmtorch')} ({openmmtorch.__file__})")
    emit(f"OpenMM platforms: {', '.join(platform_names())}")
    if kernels.available():
        emit(f"C++ kernels: available ({kernels.instruction_set()}, built for torch "
             f"{kernels.built_against(kernels.library_candidates()[0]) or 'unknown'})")
    else:
        emit(f"C++ kernels: NOT available: {kernels.unavailable_reason()}; the TorchScript path runs instead: "
             f"{kernels.SLOWDOWN}")
    return 0


def _distribution_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"
