"""The package's layers import one way, and ``import openmm_ani`` loads no training code.

Layers, lowest first (docs/architecture.md): ``units``/``files`` -> ``model`` -> ``formats`` ->
``openmm`` -> ``simulation`` -> ``freeenergy``/``benchmark`` -> ``cli``. A module may import its
own layer and lower ones, never a higher one; function-level imports count too (they are
how import circles hide). ``training`` (installed as ``openmm_ani.training``) may import
``units``, ``files``, ``model`` and ``formats`` only, and only ``cli`` may import it.
``model`` and ``formats`` never import OpenMM itself.
"""

import ast
import json
import os
import subprocess
import sys
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: Rank of each top-level part of the package (a module may import ranks <= its own).
RANKS: Dict[str, int] = {
    "units": 0, "files": 0, "argtypes": 0, "interrupts": 0, "resume": 0, "thirdparty": 0,
    "model": 1, "kernels": 1,
    "formats": 2, "models": 2,
    "openmm": 3, "reporter": 3, "serialization": 3, "": 3,  # "" is openmm_ani/__init__.py
    "simulation": 4,
    "freeenergy": 5, "benchmark": 5,
    "cli": 6, "__main__": 6,
}
#: What the training subpackage may import from openmm_ani.
TRAINING_MAY_IMPORT = {"units", "files", "argtypes", "interrupts", "resume", "model", "kernels", "formats", "models", "training"}
#: Parts of the package that must not import the OpenMM library (pure PyTorch/NumPy).
NO_OPENMM = {"units", "files", "argtypes", "interrupts", "resume", "model", "kernels", "formats", "models"}


def package_modules() -> Iterator[Tuple[str, str]]:
    """(dotted module name, path) of every module of openmm_ani, training included."""
    for folder, package in ((os.path.join(ROOT, "openmm_ani"), "openmm_ani"), (os.path.join(ROOT, "training"), "openmm_ani.training")):
        for directory, _, files in os.walk(folder):
            for name in sorted(files):
                if not name.endswith(".py"):
                    continue
                relative = os.path.relpath(os.path.join(directory, name), folder)[:-3].split(os.sep)
                if relative[-1] == "__init__":
                    relative = relative[:-1]
                yield ".".join([package] + relative), os.path.join(directory, name)


MODULES = {module for module, _ in package_modules()}


def imported_modules(module: str, source: str, is_package: bool) -> Iterator[Tuple[str, int]]:
    """Absolute names of everything ``source`` imports (every scope), with line numbers."""
    parts = module.split(".")
    package = parts if is_package else parts[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # each imported name may be a module (part_of falls back to the package)
                yield f"{target}.{alias.name}", node.lineno


def part_of(module: str) -> Optional[str]:
    """The layer name of an openmm_ani module ("training" for the training package), or None.

    A name that is no module of the package (``from .. import __version__``) belongs to the
    package that defines it.
    """
    if not (module == "openmm_ani" or module.startswith("openmm_ani.")):
        return None
    while module not in MODULES and "." in module:
        module = module.rsplit(".", 1)[0]
    return "" if module == "openmm_ani" else module.split(".")[1]


def violations(module: str, source: str, is_package: bool) -> List[str]:
    """The imports of ``module`` that break the layering rules, as readable lines."""
    own = part_of(module)
    found = []
    for target, line in imported_modules(module, source, is_package):
        if own in NO_OPENMM and (target == "openmm" or target.startswith(("openmm.", "openmmtorch"))):
            found.append(f"{module}:{line} imports the OpenMM library ({target})")
        other = part_of(target)
        if other is None or other == own:
            continue
        if own == "training":
            if other not in TRAINING_MAY_IMPORT:
                found.append(f"{module}:{line} (training) imports {target}")
        elif other == "training":
            if own != "cli":
                found.append(f"{module}:{line} imports the training package ({target})")
        elif other in RANKS and own in RANKS and RANKS[other] > RANKS[own]:
            found.append(f"{module}:{line} ({own}, rank {RANKS[own]}) imports upward: {target} ({other}, rank {RANKS[other]})")
        elif other not in RANKS:
            found.append(f"{module}:{line} imports {target}, whose layer is unknown: add it to RANKS")
    return found


def test_every_part_of_the_package_has_a_layer():
    parts = {part_of(module) for module, _ in package_modules()}
    assert parts - set(RANKS) - {"training"} == set()


def test_imports_run_one_way():
    found = []
    for module, path in package_modules():
        with open(path) as stream:
            found.extend(violations(module, stream.read(), path.endswith("__init__.py")))
    assert found == []


@pytest.mark.parametrize(
    "module, source, expected",
    [
        ("openmm_ani.model.aev", "from ..openmm import potential\n", "imports upward"),
        ("openmm_ani.openmm.embedding.system", "def f():\n    from ...freeenergy import states\n", "imports upward"),
        ("openmm_ani.formats.native", "import openmm\n", "OpenMM library"),
        ("openmm_ani.training.trainer", "from openmm_ani.openmm.module import ANIForceModule\n", "(training)"),
        ("openmm_ani.openmm.potential", "from ..training import data\n", "training package"),
    ],
)
def test_rule_catches_upward_imports(module, source, expected):
    """The checker itself: each of these imports breaks a rule and is reported."""
    (line,) = violations(module, source, is_package=False)
    assert expected in line


def test_rule_allows_downward_and_sibling_imports():
    assert violations("openmm_ani.openmm.embedding.system", "from ...model import ANIModel\nfrom ..forces import x\n", False) == []
    assert violations("openmm_ani.cli.train", "def f():\n    from ..training import cli\n", False) == []
    assert violations("openmm_ani.training.export", "from openmm_ani.formats import save\n", False) == []


SCRIPT = """
import json, sys
import openmm_ani
from openmm_ani import ANIPotential
import openmm_ani.cli, openmm_ani.reporter, openmm_ani.openmm, openmm_ani.serialization, openmm_ani.freeenergy
potential = ANIPotential("ani1ccx")
potential.createForce([8, 1, 1])
print(json.dumps(sorted(sys.modules)))
"""

FORBIDDEN_PREFIXES = ("openmm_ani.training", "h5py", "pyscf")


def test_import_does_not_load_training_h5py_pyscf():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    modules = json.loads(result.stdout.strip().splitlines()[-1])
    assert "openmm_ani.openmm.potential" in modules and "openmmtorch" in modules  # the probe really ran
    loaded = [m for m in modules if m == "openmm_ani.training" or m.startswith(FORBIDDEN_PREFIXES)]
    assert loaded == []
