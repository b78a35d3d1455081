"""OpenMM platforms by name, with an error that says which ones this installation has.

``openmm.Platform.getPlatformByName("CUDA")`` on a machine without CUDA says only that there is
no such platform. :func:`get_platform` names the platforms that are registered and, for the GPU
platforms, how to get them (the ``cuda12`` extra: OpenMM's and openmm-torch's CUDA 12 builds).
Commands call it before they write any file.
"""

from typing import List

import openmm

#: Platforms that the ``cuda12`` extra (``pip install "openmm-ani[cuda12]"``) brings, with a CUDA 12 driver.
GPU_PLATFORMS = ("CUDA", "OpenCL")


def platform_names() -> List[str]:
    """Names of the OpenMM platforms registered in this installation, fastest first."""
    platforms = [openmm.Platform.getPlatform(i) for i in range(openmm.Platform.getNumPlatforms())]
    return [p.getName() for p in sorted(platforms, key=lambda p: -p.getSpeed())]


def get_platform(name: str) -> openmm.Platform:
    """The OpenMM platform ``name``.

    Raises
    ------
    ValueError
        One line naming ``name``, the platforms there are, and for CUDA/OpenCL the ``cuda12`` extra.
    """
    names = platform_names()
    if name not in names:
        hint = ""
        if name in GPU_PLATFORMS:
            hint = ('; the CUDA platforms of OpenMM and openmm-torch come with `pip install "openmm-ani[cuda12]"` '
                    "and need an NVIDIA GPU with a CUDA 12 driver")
        raise ValueError(f"OpenMM platform {name!r} is not available here (available: {', '.join(names)}){hint}")
    return openmm.Platform.getPlatformByName(name)
