"""Packaging consistency: pyproject.toml vs conda-recipe/meta.yaml, entry points, shipped files."""

import importlib
import os
import re
import tomllib

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PIP_TO_CONDA = {"torch": "pytorch", "openmmtorch": "openmm-torch"}


def pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def meta():
    with open(os.path.join(ROOT, "conda-recipe", "meta.yaml")) as handle:
        return yaml.safe_load(handle)


def split_requirement(text):
    match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", text)
    assert match, text
    return match.group(1).lower(), match.group(2).replace(" ", "")


def test_conda_run_requirements_match_pyproject():
    pip = dict(split_requirement(r) for r in pyproject()["project"]["dependencies"])
    conda = dict(split_requirement(r) for r in meta()["requirements"]["run"])
    conda.pop("python")
    mapped = {PIP_TO_CONDA.get(name, name): spec for name, spec in pip.items()}
    assert mapped == conda
    for needed in ("openmm", "openmm-torch", "pytorch", "openmmtools", "mdtraj", "numpy", "pymbar", "tqdm"):
        assert needed in conda


def test_versions_and_recipe_basics():
    project = pyproject()["project"]
    recipe = meta()
    assert recipe["package"]["version"] == project["version"] == importlib.import_module("openmm_ani").__version__
    # built per platform: setup.py compiles the C++ kernels against the host pytorch, pinned as at run time
    assert "noarch" not in recipe["build"]
    assert "OPENMM_ANI_BUILD_KERNELS=1" in recipe["build"]["script"]
    assert any("compiler('cxx')" in r for r in recipe["requirements"]["build"])
    host_torch = [r for r in recipe["requirements"]["host"] if r.startswith("pytorch")]
    run_torch = [r for r in recipe["requirements"]["run"] if r.startswith("pytorch")]
    assert host_torch == run_torch
    assert "openmm-ani --help" in recipe["test"]["commands"]
    assert "openmm_ani" in recipe["test"]["imports"]
    assert recipe["build"]["entry_points"] == [f"openmm-ani = {project['scripts']['openmm-ani']}"]
    python_pin = [r for r in recipe["requirements"]["run"] if r.startswith("python")][0]
    assert python_pin.replace(" ", "") == "python" + project["requires-python"]


def test_entry_points_resolve():
    project = pyproject()["project"]
    targets = list(project["scripts"].values()) + list(project["entry-points"]["openmmml.potentials"].values())
    for target in targets:
        module, attribute = target.split(":")
        assert callable(getattr(importlib.import_module(module), attribute)), target


def test_every_package_is_listed_and_data_shipped():
    setuptools = pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    mapping = setuptools["package-dir"]
    found = set()
    for package, folder in mapping.items():
        for directory, _, files in os.walk(os.path.join(ROOT, folder)):
            if "__init__.py" in files and "__pycache__" not in directory:
                relative = os.path.relpath(directory, os.path.join(ROOT, folder))
                name = package if relative == "." else package + "." + relative.replace(os.sep, ".")
                if not any(name.startswith(other + ".") or name == other for other in mapping if other != package
                           and other.startswith(package + ".")):
                    found.add(name)
    assert found <= listed, f"packages missing from pyproject: {sorted(found - listed)}"
    data = setuptools["package-data"]["openmm_ani"]
    assert "py.typed" in data and os.path.isfile(os.path.join(ROOT, "openmm_ani", "py.typed"))
    assert any(os.path.isfile(os.path.join(ROOT, "openmm_ani", "data", f)) for f in ("ani1ccx.npz",))


def test_extras():
    extras = pyproject()["project"]["optional-dependencies"]
    assert "pytest" in extras["test"] and any(r.startswith("openmmml") for r in extras["test"])
    assert "training" in extras
