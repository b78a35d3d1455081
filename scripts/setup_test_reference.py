"""Install the independent test reference: TorchANI 2.2.4 with the published NeuroChem model folders.

TorchANI 2.2.4 on PyPI ships without its model files (it downloads them at run time, which
tests may not do); the torchani 1.2 wheel on PyPI carries the published ANI-1ccx, ANI-1x and
ANI-2x NeuroChem folders. This script

1. ``pip install --no-deps torchani==2.2.4`` plus its small runtime dependencies
   (lark-parser, requests, importlib_metadata) into the running interpreter's environment;
2. ``pip download --no-deps torchani==1.2`` and copies ``ani-1ccx_8x`` and ``ani-1x_8x``
   (and ``ani-2x_8x`` where the wheel has it; the PyPI 1.2 wheel does not), with their
   ``.info`` files, over TorchANI 2.2.4's empty placeholders in its ``resources`` folder.

It is idempotent (a marker file in ``resources`` records a completed copy). TorchANI is a test reference only, never a
runtime dependency of openmm-ani. Run with the environment's Python:
``.venv/bin/python scripts/setup_test_reference.py``.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

TORCHANI = "torchani==2.2.4"
EXTRA = ["lark-parser", "requests", "importlib_metadata"]
WHEEL = "torchani==1.2"
FOLDERS = ["ani-1ccx_8x", "ani-1x_8x", "ani-2x_8x"]
MARKER = ".openmm-ani-reference"
#: Folders copied when the wheel has them (openmm-ani's tests use only ANI-1ccx and ANI-1x).
OPTIONAL = {"ani-2x_8x"}


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def resources_dir() -> str:
    spec = importlib.util.find_spec("torchani")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("torchani is not importable after installation")
    return os.path.join(list(spec.submodule_search_locations)[0], "resources")


def installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torchani")
    except PackageNotFoundError:
        return ""


def main() -> int:
    if installed_version() != "2.2.4":
        pip("install", "--quiet", "--no-deps", TORCHANI)
    pip("install", "--quiet", *EXTRA)
    importlib.invalidate_caches()
    target = resources_dir()
    marker = os.path.join(target, MARKER)
    if os.path.isfile(marker):
        print(f"TorchANI reference ready: {target}")
        return 0
    # torchani 2.2.4's wheel ships these folders with empty placeholder files: replace them all
    missing = list(FOLDERS)
    copied = []
    os.makedirs(target, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="torchani12-") as tmp:
        pip("download", "--quiet", "--no-deps", "--only-binary=:all:", "-d", tmp, WHEEL)
        wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
        if len(wheels) != 1:
            raise RuntimeError(f"expected one torchani 1.2 wheel in {tmp}, found {wheels}")
        extracted = os.path.join(tmp, "x")
        with zipfile.ZipFile(os.path.join(tmp, wheels[0])) as archive:
            archive.extractall(extracted)
        source = os.path.join(extracted, "torchani", "resources")
        for folder in missing:
            if not os.path.isdir(os.path.join(source, folder)):
                if folder in OPTIONAL:
                    print(f"{folder} is not in the {WHEEL} wheel: left as torchani 2.2.4 ships it (unused here)")
                    continue
                raise RuntimeError(f"{folder} not found in the {WHEEL} wheel")
            staging = os.path.join(target, folder + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(os.path.join(source, folder), staging)
            shutil.rmtree(os.path.join(target, folder), ignore_errors=True)
            os.replace(staging, os.path.join(target, folder))
            copied.append(folder)
            info = os.path.join(source, folder + ".info")
            if os.path.isfile(info):
                shutil.copy(info, os.path.join(target, folder + ".info"))
    with open(marker + ".tmp", "w") as handle:
        handle.write(f"NeuroChem folders {', '.join(FOLDERS)} copied from the {WHEEL} wheel\n")
    os.replace(marker + ".tmp", marker)
    print(f"TorchANI reference ready: {target} (copied {', '.join(copied)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
