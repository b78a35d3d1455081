"""Write small synthetic NeuroChem model folders for tests (no real weights needed).

The layout follows the published folders (``*.params``, ``sae_linfit.dat``,
``train<k>/networks/ANN-<el>.nnf`` with a ``<length>=`` header, a newline and a bz2 stream of
the layer description ending in a NUL byte, plus raw float32 ``.wparam``/``.bparam`` files in
row-major ``[out, in]`` order), so both openmm-ani's reader and TorchANI's can read them.
"""

import bz2
import os
from typing import Dict, List, Sequence

import numpy as np

#: ANI-2x-like hyper-parameters: 7 elements, Rcr 5.1 Å, Rca 3.5 Å, 16 radial shifts, 4 x 8 angular terms.
ANI2X_LIKE = {
    "elements": ["H", "C", "N", "O", "S", "F", "Cl"],
    "Rcr": 5.1, "Rca": 3.5,
    "EtaR": [19.7], "ShfR": list(np.linspace(0.8, 4.8625, 16)),
    "EtaA": [12.5], "Zeta": [14.1], "ShfA": [0.8, 1.1375, 1.475, 1.8125, 2.15, 2.4875, 2.825, 3.1625],
    "ShfZ": list(np.pi / 8 * (np.arange(4) + 0.5) * 2),
}


def _vector(values: Sequence[float]) -> str:
    return "[" + ",".join(f"{v:.7e}" for v in values) + "]"


def aev_length(params: Dict) -> int:
    s = len(params["elements"])
    radial = len(params["EtaR"]) * len(params["ShfR"])
    angular = len(params["EtaA"]) * len(params["Zeta"]) * len(params["ShfA"]) * len(params["ShfZ"])
    return s * radial + s * (s + 1) // 2 * angular


def write_nnf(directory: str, element: str, width: int, layers: List[Dict]) -> None:
    """Write ``ANN-<element>.nnf`` and its parameter files; ``layers``: dicts of weight [out, in], bias, activation."""
    text = [f"inputsize={width};", f"atom_net {element} $"]
    for k, layer in enumerate(layers, start=1):
        out, inp = layer["weight"].shape
        wname = f"ANN-{element}.nnf-l{k}.wparam"
        bname = f"ANN-{element}.nnf-l{k}.bparam"
        layer["weight"].astype("<f4").tofile(os.path.join(directory, wname))
        layer["bias"].astype("<f4").tofile(os.path.join(directory, bname))
        text += ["layer [", f"nodes={out};", f"activation={layer['activation']};", "type=0;", f"blocksize={inp};",
                 "dropout=0;", "l2valu=0.000100;", f"weights=FILE:{wname}[{out * inp}];",
                 f"biases=FILE:{bname}[{out}];", "]"]
    text.append(" $")
    payload = ("\n".join(text) + "\n").encode("ascii") + b"\x00"
    with open(os.path.join(directory, f"ANN-{element}.nnf"), "wb") as handle:
        handle.write(f"{len(payload)}=\n".encode("ascii") + bz2.compress(payload))


def write_folder(folder: str, params: Dict = ANI2X_LIKE, members: int = 2, hidden: Sequence[int] = (16, 8),
                 activations: Sequence[int] = (9, 5), seed: int = 0) -> Dict:
    """Write an ensemble folder with random weights; returns the params used (with ``sae``)."""
    rng = np.random.default_rng(seed)
    elements = params["elements"]
    os.makedirs(folder, exist_ok=True)
    width = aev_length(params)
    with open(os.path.join(folder, "synthetic.params"), "w") as handle:
        handle.write("TM = 1\n")
        handle.write(f"Rcr = {params['Rcr']:.4e}\nRca = {params['Rca']:.4e}\n")
        for key in ("EtaR", "ShfR", "Zeta", "ShfZ", "EtaA", "ShfA"):
            handle.write(f"{key} = {_vector(params[key])}\n")
        handle.write("Atyp = [" + ",".join(elements) + "]\n")
    sae = {e: float(-rng.uniform(0.5, 400.0)) for e in elements}
    with open(os.path.join(folder, "sae_linfit.dat"), "w") as handle:
        for index, e in enumerate(elements):
            handle.write(f"{e},{index}={sae[e]!r}\n")
    for member in range(members):
        directory = os.path.join(folder, f"train{member}", "networks")
        os.makedirs(directory, exist_ok=True)
        for element in elements:
            sizes = [width, *hidden, 1]
            layers = []
            for k in range(len(sizes) - 1):
                activation = activations[k] if k < len(hidden) else 6
                layers.append({
                    "weight": rng.normal(0.0, 1.0 / np.sqrt(sizes[k]), size=(sizes[k + 1], sizes[k])),
                    "bias": rng.normal(0.0, 0.1, size=sizes[k + 1]),
                    "activation": activation,
                })
            write_nnf(directory, element, width, layers)
    return {**params, "sae": sae, "members": members}
