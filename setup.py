"""Build of openmm-ani's C++ kernels (``torch.ops.openmm_ani``, see openmm_ani/kernels).

The package metadata lives in pyproject.toml; this file only adds the kernel library, built with
torch's extension tools against the torch that is importable *at build time*: pip's isolated build
environment gets it from ``[build-system] requires`` (same minor version as the run-time pin), so
``pip install .``, ``pip wheel .`` and ``pip install openmm-ani`` from the sdist build the kernels;
``--no-build-isolation`` builds against the torch already installed (conda-build). The library
carries the torch version it was built against as a marker string, which :mod:`openmm_ani.kernels`
reads from the file and checks before loading it.

Without torch at build time, without a C++ compiler, or with ``OPENMM_ANI_BUILD_KERNELS=0``, the
package is built as pure Python and openmm-ani runs its TorchScript path (same results, MD about
2x slower). ``OPENMM_ANI_BUILD_KERNELS=1`` makes a failed kernel build an error instead of a warning.
"""

import glob
import os
import sys

from setuptools import setup

KERNEL_MODULE = "openmm_ani.kernels._openmm_ani_kernels"
MODE = os.environ.get("OPENMM_ANI_BUILD_KERNELS", "auto").strip().lower()


def say(message: str) -> None:
    sys.stderr.write(f"openmm-ani setup: {message}\n")


def kernel_build():
    """``(ext_modules, cmdclass)`` for the kernels, or empty when they cannot be built here."""
    if MODE in ("0", "no", "false"):
        say("OPENMM_ANI_BUILD_KERNELS=0: building without the C++ kernels")
        return [], {}
    try:
        import torch
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        if MODE in ("1", "yes", "true"):
            raise
        say("torch is not importable at build time: building without the C++ kernels (MD about 2x slower); "
            "install torch and build with `pip install --no-build-isolation .` to build them")
        return [], {}

    class OptionalBuildExtension(BuildExtension):
        """Build the kernels; on failure (no compiler, ...) warn and continue without them."""

        def build_extension(self, ext):
            try:
                super().build_extension(ext)
                say(f"built the C++ kernels against torch {torch.__version__}")
            except Exception as error:  # compiler missing or failing: the TorchScript path remains
                if MODE in ("1", "yes", "true"):
                    raise
                say(f"the C++ kernels could not be built ({type(error).__name__}: {error}); "
                    "openmm-ani will use its TorchScript path")

    here = os.path.dirname(os.path.abspath(__file__))
    sources = sorted(os.path.relpath(p, here) for p in glob.glob(os.path.join(here, "openmm_ani", "kernels", "csrc", "*.cpp")))
    version = torch.__version__.split("+")[0]
    extension = CppExtension(
        KERNEL_MODULE,
        sources,
        # -fno-trapping-math: the kernels use no floating-point exceptions, and without it GCC will not
        # if-convert the selects of the activation and AEV loops, which then stay scalar (the CELU
        # loop was a quarter of an MD step's instructions). It changes no result.
        extra_compile_args=["-O3", "-fno-trapping-math", f"-DOPENMM_ANI_TORCH_VERSION={version}"],
    )
    return [extension], {"build_ext": OptionalBuildExtension.with_options(no_python_abi_suffix=True)}


ext_modules, cmdclass = kernel_build()
setup(ext_modules=ext_modules, cmdclass=cmdclass)
