"""openmm-ani energies and forces against TorchANI 2.2.4, the independent reference.

The stored reference (``tests/data/ani_reference.npz``, written by ``scripts/generate_reference.py``)
holds TorchANI float64 energies and forces of real openmmtools structures perturbed off
equilibrium, for the ANI-1ccx and ANI-1x ensembles and each of their 8 members. A live
cross-check recomputes TorchANI on a fresh perturbation when TorchANI is importable, and
the ANI-2x NeuroChem folder (shipped with TorchANI) checks that a 7-element model with a
different cutoff loads and agrees.
"""

import json
import os
import warnings
from typing import Dict, List, Optional, Tuple

import numpy as np
import pytest
import torch

import openmm_ani
from openmm_ani.formats import build_model
from openmm_ani.formats.neurochem import read_folder

from paths import DATA_DIR, REFERENCE
MODEL_NAMES = ["ani1ccx", "ani1x"]

#: float64 tolerances of the issue: energy (Ha) and force components (Ha/Å).
E_TOL_64 = 1e-7
F_TOL_64 = 1e-6
#: float32: energy within 1e-4 Ha (molecules); forces within 5e-5 Ha/Å.
E_TOL_32 = 1e-4
F_TOL_32 = 5e-5
#: float32 cannot represent a 255-atom water box energy (~6490 Ha, one ulp = 4.9e-4 Ha) to 1e-4 Ha,
#: so periodic boxes get 4 float32 ulps of the energy instead.
ULPS_32_PERIODIC = 4


def _structure_names() -> List[str]:
    with np.load(REFERENCE) as data:
        return sorted({key.split("__")[0] for key in data.files})


STRUCTURES = _structure_names()
MEMBERS = ["ensemble"] + list(range(8))


@pytest.fixture(scope="module")
def reference(reference_path: str) -> Dict[str, np.ndarray]:
    with np.load(reference_path) as data:
        return {key: data[key] for key in data.files}


_MODELS: Dict[Tuple[str, Optional[int], torch.dtype], openmm_ani.ANIModel] = {}


def get_model(name: str, index: Optional[int], dtype: torch.dtype) -> openmm_ani.ANIModel:
    key = (name, index, dtype)
    if key not in _MODELS:
        _MODELS[key] = openmm_ani.models.load(name, model_index=index, dtype=dtype)
    return _MODELS[key]


def inputs(reference: Dict[str, np.ndarray], structure: str, dtype: torch.dtype):
    z = torch.tensor(reference[f"{structure}__atomic_numbers"]).unsqueeze(0)
    x = torch.tensor(reference[f"{structure}__positions"], dtype=dtype).unsqueeze(0)
    cell_key = f"{structure}__cell"
    cell = torch.tensor(reference[cell_key], dtype=dtype) if cell_key in reference else None
    return z, x, cell


def energy_forces(model, z, x, cell) -> Tuple[float, np.ndarray]:
    x = x.clone().requires_grad_(True)
    energy = model(z, x, cell)
    (grad,) = torch.autograd.grad(energy.sum(), x)
    return float(energy.item()), (-grad[0]).double().numpy()


def expected(reference, structure: str, name: str, member) -> Tuple[float, np.ndarray]:
    if member == "ensemble":
        return float(reference[f"{structure}__{name}__energy"]), reference[f"{structure}__{name}__forces"]
    return (
        float(reference[f"{structure}__{name}__member_energies"][member]),
        reference[f"{structure}__{name}__member_forces"][member],
    )


def test_reference_file_is_what_the_script_describes(reference):
    """The npz holds every structure for both models with consistent shapes; the JSON names TorchANI 2.2.4."""
    with open(os.path.join(DATA_DIR, "ani_reference.json")) as handle:
        provenance = json.load(handle)
    assert provenance["torchani_version"] == "2.2.4"
    assert sorted(provenance["structures"]) == STRUCTURES
    assert os.path.getsize(REFERENCE) < 2_000_000
    for s in STRUCTURES:
        n = reference[f"{s}__atomic_numbers"].shape[0]
        assert n == provenance["structures"][s]["num_atoms"]
        assert set(reference[f"{s}__atomic_numbers"].tolist()) <= {1, 6, 7, 8}
        assert (f"{s}__cell" in reference) == provenance["structures"][s]["periodic"]
        for name in MODEL_NAMES:
            assert reference[f"{s}__{name}__member_forces"].shape == (8, n, 3)
            # TorchANI's ensemble energy is the mean of its members.
            np.testing.assert_allclose(
                reference[f"{s}__{name}__energy"], reference[f"{s}__{name}__member_energies"].mean(), atol=1e-9
            )


@pytest.mark.parametrize("member", MEMBERS)
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("structure", STRUCTURES)
def test_float64_parity(reference, structure, name, member):
    """float64: |dE| <= 1e-7 Ha and every |dF| component <= 1e-6 Ha/Å against TorchANI."""
    model = get_model(name, None if member == "ensemble" else member, torch.float64)
    z, x, cell = inputs(reference, structure, torch.float64)
    energy, forces = energy_forces(model, z, x, cell)
    ref_energy, ref_forces = expected(reference, structure, name, member)
    de = abs(energy - ref_energy)
    df = float(np.abs(forces - ref_forces).max())
    assert de <= E_TOL_64, f"{structure} {name}[{member}] float64 |dE| = {de:.3e} Ha > {E_TOL_64}"
    assert df <= F_TOL_64, f"{structure} {name}[{member}] float64 max |dF| = {df:.3e} Ha/Å > {F_TOL_64}"


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("structure", STRUCTURES)
def test_stacked_member_energies_and_std(reference, structure, name):
    """The ensemble's one-pass member energies [8] and its std equal TorchANI's 8 separate members."""
    model = get_model(name, None, torch.float64)
    z, x, cell = inputs(reference, structure, torch.float64)
    with torch.no_grad():
        members = model.member_energies(z, x, cell)[:, 0].numpy()
        mean, std = model.energies_and_std(z, x, cell)
    ref = reference[f"{structure}__{name}__member_energies"]
    assert members.shape == (8,)
    np.testing.assert_allclose(members, ref, rtol=0, atol=E_TOL_64)
    np.testing.assert_allclose(float(mean), ref.mean(), rtol=0, atol=E_TOL_64)
    np.testing.assert_allclose(float(std), ref.std(ddof=1), rtol=0, atol=1e-8)


@pytest.mark.parametrize("member", ["ensemble", 0, 7])
@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("structure", STRUCTURES)
def test_float32_parity(reference, structure, name, member):
    """float32: energy within 1e-4 Ha of TorchANI float64 (4 ulps for 255-atom boxes), forces within 5e-5 Ha/Å."""
    model = get_model(name, None if member == "ensemble" else member, torch.float32)
    z, x, cell = inputs(reference, structure, torch.float32)
    energy, forces = energy_forces(model, z, x, cell)
    ref_energy, ref_forces = expected(reference, structure, name, member)
    tol = E_TOL_32
    if cell is not None:
        tol = max(tol, ULPS_32_PERIODIC * float(np.spacing(np.float32(abs(ref_energy)))))
    de = abs(energy - ref_energy)
    df = float(np.abs(forces - ref_forces).max())
    assert de <= tol, f"{structure} {name}[{member}] float32 |dE| = {de:.3e} Ha > {tol:.1e}"
    assert df <= F_TOL_32, f"{structure} {name}[{member}] float32 max |dF| = {df:.3e} Ha/Å > {F_TOL_32}"


def _torchani():
    torchani = pytest.importorskip("torchani", reason="TorchANI (test-only reference) is not installed")
    return torchani


def _torchani_energy_forces(model, z: np.ndarray, x: np.ndarray, cell: Optional[np.ndarray] = None):
    kwargs = {}
    if cell is not None:
        kwargs = {"cell": torch.tensor(cell), "pbc": torch.tensor([True, True, True])}
    xt = torch.tensor(x).unsqueeze(0).requires_grad_(True)
    energy = model((torch.tensor(z).unsqueeze(0), xt), **kwargs).energies
    (grad,) = torch.autograd.grad(energy.sum(), xt)
    return float(energy.item()), (-grad[0]).numpy()


@pytest.mark.parametrize("name,cls", [("ani1ccx", "ANI1ccx"), ("ani1x", "ANI1x")])
def test_live_torchani_fresh_perturbation(reference, name, cls):
    """A freshly perturbed alanine dipeptide (new seed) agrees with TorchANI computed now, float64."""
    torchani = _torchani()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = getattr(torchani.models, cls)(periodic_table_index=True).double()
    rng = np.random.default_rng(7)
    z = reference["alanine_dipeptide__atomic_numbers"]
    x = reference["alanine_dipeptide__positions"] + rng.normal(0.0, 0.1, size=(len(z), 3))
    ref_e, ref_f = _torchani_energy_forces(ta, z, x)
    e, f = energy_forces(get_model(name, None, torch.float64), torch.tensor(z)[None], torch.tensor(x)[None], None)
    assert abs(e - ref_e) <= E_TOL_64
    assert np.abs(f - ref_f).max() <= F_TOL_64
    # The fresh structure really differs from the stored one (the check is not a replay).
    assert abs(ref_e - float(reference[f"alanine_dipeptide__{name}__energy"])) > 1e-4


def _ani2x_folder() -> str:
    torchani = _torchani()
    folder = os.path.join(os.path.dirname(torchani.__file__), "resources", "ani-2x_8x")
    if not os.path.isdir(folder):
        pytest.skip(f"the ANI-2x NeuroChem folder is not installed at {folder}")
    params = [f for f in os.listdir(folder) if f.endswith(".params")]
    if not params or os.path.getsize(os.path.join(folder, params[0])) == 0:
        pytest.skip(
            f"the ANI-2x NeuroChem folder at {folder} holds only empty placeholder files "
            "(the torchani 1.2 wheel does not carry ani-2x_8x and no other offline source is installed)"
        )
    return folder


#: A hand-built S/F/Cl molecule (chlorofluoromethanethiol, CHFCl-SH), Å.
ANI2X_Z = np.array([6, 1, 9, 17, 16, 1])
ANI2X_X = np.array([
    [0.000, 0.000, 0.000],
    [0.000, 0.000, 1.090],
    [1.300, 0.000, -0.450],
    [-0.850, 1.450, -0.590],
    [-0.850, -1.480, -0.600],
    [-2.070, -1.100, -0.220],
])


def test_ani2x_folder_loads_and_matches_torchani():
    """read_folder(ani-2x_8x): 7 elements, Rcr 5.1 Å, 8 members; energy/forces match TorchANI's ANI2x on S/F/Cl."""
    folder = _ani2x_folder()
    torchani = _torchani()
    spec = read_folder(folder)
    assert spec.elements == ["H", "C", "N", "O", "S", "F", "Cl"]
    assert spec.aev.radial_cutoff == pytest.approx(5.1, abs=1e-6)
    assert spec.aev.angular_cutoff == pytest.approx(3.5, abs=1e-6)
    assert spec.num_models == 8
    assert spec.aev.length == 1008
    model = build_model(spec)
    assert model.cutoff == pytest.approx(5.1, abs=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = torchani.models.ANI2x(periodic_table_index=True).double()
    x = ANI2X_X + np.random.default_rng(3).normal(0.0, 0.05, size=ANI2X_X.shape)
    ref_e, ref_f = _torchani_energy_forces(ta, ANI2X_Z, x)
    e, f = energy_forces(model, torch.tensor(ANI2X_Z)[None], torch.tensor(x)[None], None)
    assert abs(e - ref_e) <= E_TOL_64, f"ANI-2x |dE| = {abs(e - ref_e):.3e} Ha"
    assert np.abs(f - ref_f).max() <= F_TOL_64
    with torch.no_grad():
        members = model.member_energies(torch.tensor(ANI2X_Z)[None], torch.tensor(x)[None])[:, 0].numpy()
    ta_members = ta.members_energies((torch.tensor(ANI2X_Z)[None], torch.tensor(x)[None])).energies[:, 0]
    np.testing.assert_allclose(members, ta_members.detach().numpy(), rtol=0, atol=E_TOL_64)


def test_seven_element_neurochem_folder_matches_torchani(tmp_path):
    """Any NeuroChem folder loads: a synthetic ANI-2x-shaped folder (H C N O S F Cl, Rcr 5.1 Å, CELU and
    Gaussian layers, 2 members) read by openmm_ani.neurochem equals TorchANI's own NeuroChem loader on S/F/Cl."""
    torchani = _torchani()
    from _neurochem_folder import write_folder

    folder = str(tmp_path / "ani2x_like")
    write_folder(folder)
    spec = read_folder(folder)
    assert spec.elements == ["H", "C", "N", "O", "S", "F", "Cl"]
    assert spec.aev.radial_cutoff == pytest.approx(5.1, abs=1e-6)
    assert spec.aev.length == 1008
    assert spec.num_models == 2
    model = build_model(spec)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        consts = torchani.neurochem.Constants(os.path.join(folder, "synthetic.params"))
        ensemble = torchani.neurochem.load_model_ensemble(consts.species, os.path.join(folder, "train"), 2)
        shifter = torchani.neurochem.load_sae(os.path.join(folder, "sae_linfit.dat"))
        reference = torchani.nn.Sequential(torchani.AEVComputer(**consts), ensemble, shifter).double()
        members = [torchani.nn.Sequential(torchani.AEVComputer(**consts), ensemble[k], shifter).double()
                   for k in range(2)]
    to_index = {1: 0, 6: 1, 7: 2, 8: 3, 16: 4, 9: 5, 17: 6}
    species = torch.tensor([[to_index[int(a)] for a in ANI2X_Z]])
    x = torch.tensor(ANI2X_X + np.random.default_rng(4).normal(0.0, 0.05, size=ANI2X_X.shape))

    def torchani_ef(module):
        xt = x.clone()[None].requires_grad_(True)
        e = module((species, xt)).energies
        return float(e.item()), (-torch.autograd.grad(e.sum(), xt)[0][0]).numpy()

    ref_e, ref_f = torchani_ef(reference)
    e, f = energy_forces(model, torch.tensor(ANI2X_Z)[None], x[None], None)
    assert abs(e - ref_e) <= E_TOL_64, f"|dE| = {abs(e - ref_e):.3e} Ha"
    assert np.abs(f - ref_f).max() <= F_TOL_64
    with torch.no_grad():
        ours = model.member_energies(torch.tensor(ANI2X_Z)[None], x[None])[:, 0].numpy()
    np.testing.assert_allclose(ours, [torchani_ef(m)[0] for m in members], rtol=0, atol=E_TOL_64)
    assert abs(ours[0] - ours[1]) > 1e-3  # distinct members: a member mix-up would be seen


@pytest.mark.parametrize("structure", ["alanine_dipeptide", "water_triclinic"])
def test_live_aev_equals_torchani_aev(reference, structure):
    """The AEVs themselves (layout and values, 384 per atom) equal TorchANI's AEVComputer, open and periodic."""
    torchani = _torchani()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ta = torchani.models.ANI1ccx(periodic_table_index=True).double()
    model = get_model("ani1ccx", None, torch.float64)
    z, x, cell = inputs(reference, structure, torch.float64)
    species = model.species(z)
    kwargs = {} if cell is None else {"cell": cell, "pbc": torch.tensor([True, True, True])}
    with torch.no_grad():
        ta_species, ta_aev = ta.aev_computer((ta.species_converter((z, x)).species, x), **kwargs)
        ours = model.aev(species, x, cell)
    assert torch.equal(ta_species, species)
    assert ours.shape == ta_aev.shape == (1, z.shape[1], 384)
    torch.testing.assert_close(ours, ta_aev, rtol=0, atol=1e-12)
