# openmm-ani: the two Quickstart commands.
#   make demo  - create .venv, install openmm-ani from PyPI dependencies, run the T4 lysozyme/p-xylene MD demo
#   make test  - create/update .venv, install test extras and the TorchANI reference, run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
VPY    := $(VENV)/bin/python
# extra arguments of the demo script, e.g. `make demo DEMO_ARGS="--steps 20"` (CI's quick demo)
DEMO_ARGS ?=
PIP    := $(VPY) -m pip

.PHONY: demo test venv install install-test clean

$(VPY):
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 needed, found {sys.version.split()[0]} at {sys.executable}"'
	$(PYTHON) -m venv $(VENV)

venv: $(VPY)

# setuptools < 82: the TorchANI 2.2.4 test reference (and openmm-ml 1.7's ANI through it) imports pkg_resources,
# which setuptools 82 removed.
# The second, non-isolated pass builds the C++ kernels (openmm_ani/kernels) against the torch the first
# pass installed; without a compiler it warns and openmm-ani uses its TorchScript path.
install: venv
	$(PIP) install --quiet --upgrade pip "setuptools>=68,<82" wheel
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-build-isolation --no-deps -e .

install-test: venv
	$(PIP) install --quiet --upgrade pip "setuptools>=68,<82" wheel
	$(PIP) install --quiet -e ".[test,training]"
	$(PIP) install --quiet --no-build-isolation --no-deps -e .
	$(VPY) scripts/setup_test_reference.py

demo: install
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} $(VPY) examples/t4_lysozyme_md.py $(DEMO_ARGS)

# pytest's exit status 5 (no tests collected) is a failure too
test: install-test
	OMP_NUM_THREADS=1 $(VPY) -m pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$status

clean:
	rm -rf out build dist *.egg-info
