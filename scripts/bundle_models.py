#!/usr/bin/env python
"""Regenerate the bundled ANI-1ccx and ANI-1x model files from the published NeuroChem folders.

The folders ship inside the ``torchani==1.2`` wheel on PyPI (``torchani/resources/``).
This script downloads that wheel with pip (or takes ``--wheel PATH``), reads the
folders with :mod:`openmm_ani.formats.neurochem` and writes ``openmm_ani/data/<name>.npz``
with the wheel's name and SHA-256 as provenance.

    python scripts/bundle_models.py [--wheel torchani-1.2-py3-none-any.whl] [--out openmm_ani/data]
"""

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile

from openmm_ani import formats
from openmm_ani.formats.neurochem import read_folder

WHEEL_REQUIREMENT = "torchani==1.2"
#: Bundled model name -> folder inside the wheel's ``torchani/resources``.
FOLDERS = {"ani1ccx": "ani-1ccx_8x", "ani1x": "ani-1x_8x"}


def download_wheel(directory: str) -> str:
    """Download the torchani 1.2 wheel into ``directory`` with pip; return its path."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q", "-d", directory,
         WHEEL_REQUIREMENT],
        check=True,
    )
    wheels = [f for f in os.listdir(directory) if f.endswith(".whl")]
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel in {directory}, found {wheels}")
    return os.path.join(directory, wheels[0])


def convert(wheel: str, out_dir: str, names=tuple(FOLDERS)) -> dict:
    """Convert the folders of ``wheel`` into native files in ``out_dir``; return name -> path."""
    with open(wheel, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    written = {}
    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(wheel) as archive:
            members = [m for m in archive.namelist() if m.startswith("torchani/resources/")]
            archive.extractall(tmp, members)
        for name in names:
            folder = os.path.join(tmp, "torchani", "resources", FOLDERS[name])
            spec = read_folder(folder, name=name)
            spec.provenance = {
                "source": f"NeuroChem folder torchani/resources/{FOLDERS[name]} of {os.path.basename(wheel)}",
                "wheel_sha256": digest,
                "members": spec.num_models,
                "generated_by": "scripts/bundle_models.py",
            }
            path = os.path.join(out_dir, f"{name}.npz")
            formats.save(spec, path)
            written[name] = path
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", help="path of a torchani-1.2 wheel (downloaded with pip when omitted)")
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "openmm_ani", "data"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(tmp)
        for name, path in convert(wheel, args.out).items():
            print(f"wrote {name}: {os.path.normpath(path)} ({os.path.getsize(path) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
