"""TorchForce round trips on the pinned stack (OpenMM 8.4-8.5 + openmmtorch 1.5).

Systems holding the ANI ``TorchForce`` — alone, and inside the interpolating ``CustomCVForce`` of a
mixed system (with link atoms, periodic) — are copied with ``copy.deepcopy``, ``pickle`` and
``XmlSerializer``, and through openmmtools' ``ThermodynamicState``/``CompoundThermodynamicState``
(pickled too) and ``ContextCache``. Every copy is evaluated on the Reference platform in double
precision and must give the original System's energy and forces at lambda = 0, 0.5 and 1 (the
reference is the original, and lambda = 0 is checked against the MM System itself). With OpenMM 8.6
and the openmmtorch 1.5 wheel each of these copies crashes the process (see
``test_torchforce_probe.py`` for how openmm-ani refuses that pair instead).
"""

import contextlib
import copy
import io
import pickle
from typing import Callable, Dict, List, Tuple

import numpy as np
import openmm
import pytest
from openmm import unit

import openmm_ani
from openmm_ani.openmm.openmmtorch import TorchForceCopyError, require_torchforce_copies

from openmm_inputs import ligand_pdb

with contextlib.redirect_stdout(io.StringIO()):  # pymbar's import banner
    testsystems = pytest.importorskip("openmmtools.testsystems")
    from openmmtools import cache, states

NM = unit.nanometer
KJ = unit.kilojoule_per_mole
LAMBDAS = (0.0, 0.5, 1.0)


class InterpolationState(states.GlobalParameterState):
    """openmmtools' composable state of ``lambda_interpolate`` (written here, independently of openmm_ani.freeenergy)."""

    lambda_interpolate = states.GlobalParameterState.GlobalParameter("lambda_interpolate", standard_value=1.0)


def reference_platform() -> openmm.Platform:
    return openmm.Platform.getPlatformByName("Reference")


def measure(context: openmm.Context, positions: np.ndarray, lam) -> Tuple[float, np.ndarray]:
    context.setPositions(positions * NM)
    if lam is not None:
        context.setParameter("lambda_interpolate", lam)
    state = context.getState(getEnergy=True, getForces=True)
    return state.getPotentialEnergy().value_in_unit(KJ), state.getForces(asNumpy=True).value_in_unit(KJ / NM)


def evaluate(system: openmm.System, positions: np.ndarray, lambdas) -> List[Tuple[float, np.ndarray]]:
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), reference_platform())
    return [measure(context, positions, lam) for lam in lambdas]


def assert_same(copied: List[Tuple[float, np.ndarray]], original: List[Tuple[float, np.ndarray]]) -> None:
    for (energy, forces), (ref_energy, ref_forces) in zip(copied, original):
        assert energy == pytest.approx(ref_energy, rel=1e-12, abs=1e-9)
        np.testing.assert_allclose(forces, ref_forces, rtol=0, atol=1e-9 * np.abs(ref_forces).max())


def xml_copy(system: openmm.System) -> openmm.System:
    return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))


COPIES: Dict[str, Callable[[openmm.System], openmm.System]] = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda system: pickle.loads(pickle.dumps(system)),
    "XmlSerializer": xml_copy,
}


@pytest.fixture(scope="module", autouse=True)
def copies_work() -> None:
    """Fail (rather than crash the test run) on a stack where copying a TorchForce segfaults."""
    try:
        require_torchforce_copies()
    except TorchForceCopyError as error:
        pytest.fail(str(error))


@pytest.fixture(scope="module")
def potential() -> openmm_ani.ANIPotential:
    """One ensemble member: the copies work the same way, and the serialized module is 8x smaller
    (the 8-member double-precision ALA module is a 42 MB System XML: 13 s per deep copy here)."""
    return openmm_ani.ANIPotential("ani1ccx", model_index=0, precision="double")


@pytest.fixture(scope="module")
def pure_ani(potential):
    pdb = ligand_pdb()
    system = potential.createSystem(pdb.topology)
    positions = np.array(pdb.positions.value_in_unit(NM))
    return system, positions, evaluate(system, positions, [None])


@pytest.fixture(scope="module")
def interpolating(potential):
    """Alanine dipeptide in water (PME), the ALA residue ML: two link atoms, periodic, interpolating."""
    with contextlib.redirect_stdout(io.StringIO()):
        ts = testsystems.AlanineDipeptideExplicit()
    ml = [a.index for a in ts.topology.atoms() if a.residue.name == "ALA"]
    system = potential.createMixedSystem(ts.topology, ts.system, ml, interpolate=True)
    positions = np.array(ts.positions.value_in_unit(NM))
    original = evaluate(system, positions, LAMBDAS)
    mm_energy, mm_forces = evaluate(ts.system, positions, [None])[0]
    assert_same(original[:1], [(mm_energy, mm_forces)])  # lambda = 0 is the MM System
    assert abs(original[2][0] - mm_energy) > 1e5  # and lambda = 1 is far from it: the comparisons can fail
    return system, positions, original


@pytest.mark.parametrize("how", sorted(COPIES))
def test_pure_ani_system_copies(pure_ani, how):
    system, positions, original = pure_ani
    copied = COPIES[how](system)
    assert_same(evaluate(copied, positions, [None]), original)


@pytest.mark.parametrize("how", sorted(COPIES))
def test_interpolating_system_copies(interpolating, how):
    system, positions, original = interpolating
    copied = COPIES[how](system)
    assert any(isinstance(f, openmm.CustomCVForce) for f in copied.getForces())
    assert_same(evaluate(copied, positions, LAMBDAS), original)


def compound_states(system: openmm.System) -> List[states.CompoundThermodynamicState]:
    thermodynamic = states.ThermodynamicState(system, temperature=300 * unit.kelvin)
    reference = states.CompoundThermodynamicState(thermodynamic, [InterpolationState.from_system(system)])
    result = []
    for lam in LAMBDAS:
        state = copy.deepcopy(reference)
        state.lambda_interpolate = lam
        result.append(state)
    return result


def test_openmmtools_states(interpolating):
    """ThermodynamicState standardises and copies the System; compound states are deep-copied and
    pickled (as openmmtools' samplers and MPI do); each builds a Context that must match the original."""
    system, positions, original = interpolating
    windows = compound_states(system)
    windows = [pickle.loads(pickle.dumps(state)) for state in windows]
    for state, expected in zip(windows, original):
        context = state.create_context(openmm.VerletIntegrator(0.001), reference_platform())
        assert context.getParameter("lambda_interpolate") == state.lambda_interpolate
        assert_same([measure(context, positions, None)], [expected])


def test_openmmtools_context_cache(interpolating):
    """One cached Context serves every window (compatible states): applying each state switches lambda."""
    system, positions, original = interpolating
    context_cache = cache.ContextCache(platform=reference_platform())
    for state, expected in zip(compound_states(system), original):
        context, _ = context_cache.get_context(state, openmm.VerletIntegrator(0.001))
        state.apply_to_context(context)
        assert_same([measure(context, positions, None)], [expected])
    assert len(context_cache) == 1
