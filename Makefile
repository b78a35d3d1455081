# openmm-ani: the two Quickstart commands.
#   make demo  - create .venv, install openmm-ani from PyPI dependencies, run the T4 lysozyme/p-xylene MD demo
#   make test  - create/update .venv, install test extras and the TorchANI reference, run the test suite
#   make wheel-check - build the wheel as pip does (isolated build), install it into a new venv, check the kernels
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip
# extra arguments of the demo script, e.g. `make demo DEMO_ARGS="--steps 20"` (CI's quick demo)
DEMO_ARGS ?=
# the fresh environment of wheel-check, beside .venv
WHEEL_VENV ?= build/wheel-venv

.PHONY: demo test venv install install-test wheel-check clean

$(VPY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version.split()[0]} at {sys.executable}"'
	$(PYTHON) -m venv $(VENV)

venv: $(VPY)

# setuptools < 82: the TorchANI 2.2.4 test reference (and openmm-ml 1.7's ANI through it) imports pkg_resources,
# which setuptools 82 removed.
# `pip install -e .` is what a user runs: pip's isolated build gets torch from pyproject's build requirements and
# compiles the C++ kernels (openmm_ani/kernels); without a compiler it warns and openmm-ani uses its TorchScript path.
install: venv
	$(PIP) install --quiet --upgrade pip "setuptools>=68,<82" wheel
	$(PIP) install --quiet -e .

# the extras on top of `install`, built against the torch now installed (no second download of torch)
install-test: install
	$(PIP) install --quiet --no-build-isolation -e ".[test,training]"
	$(VPY) scripts/setup_test_reference.py

demo: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VPY) examples/t4_lysozyme_md.py $(DEMO_ARGS)

# pytest's exit status 5 (no tests collected) is a failure too. One pytest worker per core (pytest-xdist), each
# test file on one worker (module fixtures built once), one torch/OpenMP thread each.
PYTEST_WORKERS ?= auto
test: install-test
	OMP_NUM_THREADS=1 $(VPY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

# What `pip install openmm-ani` does from the sdist: `pip wheel` with build isolation, the wheel installed into a
# new venv with its dependencies from PyPI; there the C++ kernels must load, and an example runs from outside the
# checkout (so that it imports the installed package).
wheel-check: venv
	rm -rf build/wheel $(WHEEL_VENV)
	$(PIP) wheel --quiet --no-deps -w build/wheel .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(WHEEL_VENV)/bin/python -m pip install --quiet build/wheel/openmm_ani-*.whl
	cd build && ../$(WHEEL_VENV)/bin/python -c 'import os, openmm_ani, openmm_ani.kernels as k; \
	assert "wheel-venv" in openmm_ani.__file__, openmm_ani.__file__; \
	assert k.available(), k.unavailable_reason(); print("wheel-check: C++ kernels", k.instruction_set(), "in", os.path.dirname(k.__file__))'
	cd build && OMP_NUM_THREADS=1 ../$(WHEEL_VENV)/bin/python ../examples/ani1ccx_vacuum.py --steps 20

clean:
	rm -rf out build dist *.egg-info
