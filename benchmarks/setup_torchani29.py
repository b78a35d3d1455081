#!/usr/bin/env python
"""Set up TorchANI 2.9.0 as a benchmark peer next to TorchANI 2.2.4 (the test reference).

TorchANI 2.9.0 (PyPI, pure Python) has an inference-optimised batched ensemble
(``to_infer_model()``) and cell lists. It cannot replace 2.2.4 in ``.venv`` (the tests and openmm-ml
use 2.2.4), so this script

1. ``pip install --no-deps --target .torchani29/site torchani==2.9.0`` (its modules used here need
   only torch, numpy and typing_extensions, which ``.venv`` has);
2. copies the package to ``.torchani29/torchani29`` with its absolute imports renamed
   ``torchani`` -> ``torchani29``, so both versions import in one process and are timed side by side;
3. links the published NeuroChem folders ``ani-1ccx_8x`` and ``ani-1x_8x`` (with their ``.info``
   files) from TorchANI 2.2.4's ``resources`` (put there by ``scripts/setup_test_reference.py`` from
   the torchani 1.2 wheel) into ``.torchani29/data/Neurochem``, where 2.9 looks for them when
   ``TORCHANI_DATA_DIR`` points at ``.torchani29/data`` — it would otherwise download them;
4. adds a stand-in ``huggingface_hub`` module whose download function refuses (2.9 imports it at
   module level to fetch weights; nothing here downloads);
5. checks that its ANI-1ccx energy of a water molecule equals openmm-ani's.

``.torchani29/`` is git-ignored. Run with the environment's Python: ``.venv/bin/python
benchmarks/setup_torchani29.py``; :func:`load` (used by the benchmarks) returns the renamed module.
``--bundle`` also writes ``.torchani29/bundle``: the renamed package, the stand-in and plain copies of
the NeuroChem files 2.9 reads (no training logs, about 16 MB), to carry to a machine without
network for ``benchmarks/gpu_model_benchmark.py``.
"""

import importlib
import os
import re
import shutil
import subprocess
import sys
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, ".torchani29")
VERSION = "2.9.0"
MODELS = ("ani-1ccx_8x", "ani-1x_8x")


def _rewrite(source: str) -> str:
    source = re.sub(r"\bfrom torchani(\.| import)", r"from torchani29\1", source)
    source = re.sub(r"\bimport torchani\.", "import torchani29.", source)
    source = re.sub(r"^(\s*)import torchani$", r"\1import torchani29 as torchani", source, flags=re.M)
    source = re.sub(r"([\"'])torchani\.", r"\1torchani29.", source)
    return source.replace('version("torchani")', f'"{VERSION}"')


def install() -> None:
    site = os.path.join(FOLDER, "site")
    if not os.path.isdir(os.path.join(site, "torchani")):
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site,
                        f"torchani=={VERSION}"], check=True)
    renamed = os.path.join(FOLDER, "torchani29")
    shutil.rmtree(renamed, ignore_errors=True)
    for directory, _, files in os.walk(os.path.join(site, "torchani")):
        target = os.path.join(renamed, os.path.relpath(directory, os.path.join(site, "torchani")))
        os.makedirs(target, exist_ok=True)
        for name in files:
            path = os.path.join(directory, name)
            if name.endswith(".py"):
                with open(path, encoding="utf-8") as handle:
                    text = _rewrite(handle.read())
                with open(os.path.join(target, name), "w", encoding="utf-8") as handle:
                    handle.write(text)
            else:
                shutil.copy2(path, os.path.join(target, name))
    with open(os.path.join(FOLDER, "huggingface_hub.py"), "w", encoding="utf-8") as handle:
        handle.write('"""Stand-in for the benchmark peer: TorchANI 2.9 is fed local NeuroChem folders."""\n\n\n'
                     "def hf_hub_download(*args, **kwargs):\n"
                     "    raise RuntimeError('downloads are disabled for the TorchANI 2.9 benchmark peer')\n")
    reference = importlib.util.find_spec("torchani")
    if reference is None or not reference.submodule_search_locations:
        raise SystemExit("TorchANI 2.2.4 is not installed: run scripts/setup_test_reference.py first")
    resources = os.path.join(list(reference.submodule_search_locations)[0], "resources")
    neurochem = os.path.join(FOLDER, "data", "Neurochem")
    os.makedirs(neurochem, exist_ok=True)
    for model in MODELS:
        for name in (model, model + ".info"):
            source, link = os.path.join(resources, name), os.path.join(neurochem, name)
            if not os.path.exists(source) or (os.path.isdir(source) and not os.listdir(source)):
                raise SystemExit(f"{source} is missing or empty: run scripts/setup_test_reference.py first")
            if not os.path.lexists(link):
                os.symlink(source, link)


def bundle() -> str:
    """Copy what a machine without network needs into ``.torchani29/bundle`` (see the module docstring)."""
    target = os.path.join(FOLDER, "bundle")
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(os.path.join(FOLDER, "torchani29"), os.path.join(target, "torchani29"))
    shutil.copy2(os.path.join(FOLDER, "huggingface_hub.py"), target)
    source = os.path.join(FOLDER, "data", "Neurochem")
    keep = (".params", ".dat", ".info", ".nnf", ".wparam", ".bparam")
    for directory, _, files in os.walk(source, followlinks=True):
        for name in files:
            relative = os.path.relpath(os.path.join(directory, name), source)
            if not relative.startswith("ani-1ccx_8x"):  # the benchmarks use ANI-1ccx
                continue
            if name.endswith(keep) and name not in ("cost.dat", "tolerance.dat"):
                path = os.path.join(target, "data", "Neurochem", relative)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                shutil.copy2(os.path.join(directory, name), path)
    return target


def load() -> Any:
    """The renamed TorchANI 2.9 module (``torchani29``), with its data folder set; ImportError if absent."""
    if not os.path.isdir(os.path.join(FOLDER, "torchani29")):
        raise ImportError(f"TorchANI {VERSION} is not set up: run benchmarks/setup_torchani29.py")
    os.environ["TORCHANI_DATA_DIR"] = os.path.join(FOLDER, "data")
    if FOLDER not in sys.path:
        sys.path.insert(0, FOLDER)
    return importlib.import_module("torchani29")


def load_model(name: str = "ani1ccx", dtype: Any = None) -> Any:
    """TorchANI 2.9's ensemble from the published NeuroChem folder, inference-optimised (``to_infer_model``).

    TorchANI 2.9 keeps self energies in a float32 buffer (``torch.tensor(list)``), about 2e-6 Ha off per
    heavy atom; they are set back to the file's values in ``dtype``, so that energies compare exactly.
    """
    import torch

    torchani29 = load()
    folder = {"ani1ccx": "ani-1ccx_8x", "ani1x": "ani-1x_8x"}[name]
    info = os.path.join(os.environ["TORCHANI_DATA_DIR"], "Neurochem", folder + ".info")
    model = torchani29.neurochem.load_model_from_info_file(info)
    if dtype is not None:
        model = model.to(dtype)
    with open(os.path.join(os.environ["TORCHANI_DATA_DIR"], "Neurochem", folder, "sae_linfit.dat")) as handle:
        values = [float(line.split("=")[1]) for line in handle if "=" in line]
    shifter = model.energy_shifter
    shifter.self_energies = torch.tensor(values, dtype=shifter.self_energies.dtype)
    return model.to_infer_model()


def main() -> None:
    install()
    if "--bundle" in sys.argv[1:]:
        print(f"bundle for machines without network: {bundle()}")
    import torch

    import openmm_ani

    peer = load_model("ani1ccx", torch.float64)
    z = torch.tensor([[8, 1, 1]])
    x = torch.tensor([[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]], dtype=torch.float64)
    theirs = float(peer((z, x)).energies.detach())
    ours = float(openmm_ani.models.load("ani1ccx", dtype=torch.float64)(z, x).detach())
    print(f"TorchANI {VERSION} in {FOLDER}: ANI-1ccx water energy {theirs:.10f} Ha, openmm-ani {ours:.10f} Ha")
    if abs(theirs - ours) > 1e-8:
        raise SystemExit("energies differ: the peer is not the same model")


if __name__ == "__main__":
    main()
