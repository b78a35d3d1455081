"""Reader for NeuroChem model folders, the format the ANI models were published in.

An ensemble folder (such as ``ani-1ccx_8x/``) holds

* one ``*.params`` file: AEV hyper-parameters (``Rcr``, ``Rca``, ``EtaR``, ``ShfR``, ``EtaA``,
  ``Zeta``, ``ShfA``, ``ShfZ``, ``Atyp``);
* ``sae_linfit.dat``: self-atomic energies, lines ``<symbol>,<index>=<Ha>``;
* ``train0/``, ``train1/``, ... each with ``networks/ANN-<element>.nnf``: a decimal byte
  count, ``=``, a newline and a bz2 stream of the network description
  (``inputsize=N; atom_net <el> $ layer [ key=value; ... ] ... $``), whose layers point to
  raw float32 files ``weights=FILE:<name>[out*in]`` (row-major ``[out, in]``) and
  ``biases=FILE:<name>[out]``.

A folder with ``networks/`` directly inside is read as a single model. NeuroChem computed
in float32: the AEV parameter grids (``EtaR``, ``ShfR``, ...) are rounded to float32 as it
stored them; the cutoffs stay as written (decimal), which is also what TorchANI does.
"""

import bz2
import os
import re
from typing import Dict, List, Tuple

import numpy as np

from ..model import AEVParameters
from .spec import LayerSpec, ModelSpec, PathLike

_PARAMS_KEYS = ("Rcr", "Rca", "EtaR", "ShfR", "EtaA", "Zeta", "ShfA", "ShfZ", "Atyp")


def _f32(value: str) -> float:
    return float(np.float32(float(value)))


def read_params(path: PathLike) -> Tuple[AEVParameters, List[str]]:
    """Read a NeuroChem ``.params`` file: the AEV hyper-parameters and the element order."""
    path = os.fspath(path)
    values: Dict[str, str] = {}
    with open(path) as handle:
        for line in handle:
            if "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    missing = [k for k in _PARAMS_KEYS if k not in values]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")

    def vector(key: str) -> Tuple[float, ...]:
        return tuple(_f32(v) for v in values[key].strip("[]").split(",") if v.strip())

    elements = [e.strip() for e in values["Atyp"].strip("[]").split(",") if e.strip()]
    parameters = AEVParameters(
        float(values["Rcr"]), float(values["Rca"]), vector("EtaR"), vector("ShfR"), vector("EtaA"),
        vector("Zeta"), vector("ShfA"), vector("ShfZ"), len(elements),
    )
    return parameters, elements


def read_self_energies(path: PathLike, elements: List[str]) -> List[float]:
    """Read ``sae_linfit.dat``: self energy (Ha) of each element, in ``elements`` order."""
    path = os.fspath(path)
    found: Dict[str, float] = {}
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line:
                continue
            match = re.fullmatch(r"(\w+)\s*,\s*(\d+)\s*=\s*(\S+)", line)
            if match is None:
                raise ValueError(f"{path}: cannot parse line {line!r}")
            found[match.group(1)] = float(match.group(3))
    missing = [e for e in elements if e not in found]
    if missing:
        raise ValueError(f"{path}: no self energy for element(s) {', '.join(missing)}")
    return [found[e] for e in elements]


def decompress_nnf(path: PathLike) -> str:
    """The network description text of an ``ANN-*.nnf`` file."""
    path = os.fspath(path)
    with open(path, "rb") as handle:
        raw = handle.read()
    head, sep, body = raw.partition(b"=")
    if not sep or not head.strip().isdigit():
        raise ValueError(f"{path}: not a NeuroChem .nnf file (expected '<bytes>=' header)")
    try:
        return bz2.decompress(body.lstrip(b"\r\n")).decode("ascii").strip()
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: corrupt bz2 stream: {error}") from error


def _read_floats(path: str, count: int) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NeuroChem parameter file not found: {path}")
    data = np.fromfile(path, dtype="<f4")
    if data.size != count:
        raise ValueError(f"{path}: expected {count} float32 values, found {data.size}")
    return data


def read_network(path: PathLike) -> Tuple[str, List[Tuple[np.ndarray, np.ndarray, int]]]:
    """Read one element's network from an ``.nnf`` file.

    Returns
    -------
    element, layers
        The element symbol and, per layer, ``(weight [in, out], bias [out], activation code)``.
    """
    path = os.fspath(path)
    text = decompress_nnf(path)
    directory = os.path.dirname(path)
    match = re.search(r"inputsize\s*=\s*(\d+)\s*;\s*atom_net\s+(\w+)\s*\$(.*)\$", text, re.S)
    if match is None:
        raise ValueError(f"{path}: cannot parse the network description")
    width = int(match.group(1))
    element = match.group(2)
    layers = []
    for block in re.split(r"\blayer\s*\[", match.group(3))[1:]:
        fields = dict(re.findall(r"(\w+)\s*=\s*([^;]*);", block))
        try:
            nodes = int(fields["nodes"])
            activation = int(fields["activation"])
            wfile = re.fullmatch(r"FILE:(.+)\[(\d+)\]", fields["weights"].strip())
            bfile = re.fullmatch(r"FILE:(.+)\[(\d+)\]", fields["biases"].strip())
        except KeyError as error:
            raise ValueError(f"{path}: layer without key {error}") from error
        if wfile is None or bfile is None or int(wfile.group(2)) != nodes * width or int(bfile.group(2)) != nodes:
            raise ValueError(f"{path}: inconsistent layer sizes (nodes={nodes}, input={width})")
        weight = _read_floats(os.path.join(directory, wfile.group(1)), nodes * width).reshape(nodes, width).T
        bias = _read_floats(os.path.join(directory, bfile.group(1)), nodes)
        layers.append((np.ascontiguousarray(weight), bias, activation))
        width = nodes
    if not layers:
        raise ValueError(f"{path}: no layers found")
    return element, layers


def _member_dirs(folder: str) -> List[str]:
    if os.path.isdir(os.path.join(folder, "networks")):
        return [os.path.join(folder, "networks")]
    members = []
    for name in os.listdir(folder):
        match = re.fullmatch(r"train(\d+)", name)
        if match and os.path.isdir(os.path.join(folder, name, "networks")):
            members.append((int(match.group(1)), os.path.join(folder, name, "networks")))
    if not members:
        raise ValueError(f"{folder}: no networks/ or train<k>/networks/ folders found")
    return [path for _, path in sorted(members)]


def read_folder(folder: PathLike, name: str = "") -> ModelSpec:
    """Read a NeuroChem model folder (ensemble or single model) into a :class:`ModelSpec`.

    Parameters
    ----------
    folder
        The folder, e.g. ``.../resources/ani-1ccx_8x``.
    name
        Model name; defaults to the folder name.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"NeuroChem model folder not found: {folder}")
    params = sorted(f for f in os.listdir(folder) if f.endswith(".params"))
    if len(params) != 1:
        raise ValueError(f"{folder}: expected exactly one *.params file, found {params}")
    aev, elements = read_params(os.path.join(folder, params[0]))
    self_energies = read_self_energies(os.path.join(folder, "sae_linfit.dat"), elements)
    per_member: List[Dict[str, List[Tuple[np.ndarray, np.ndarray, int]]]] = []
    for directory in _member_dirs(folder):
        networks = {}
        for element in elements:
            path = os.path.join(directory, f"ANN-{element}.nnf")
            found, layers = read_network(path)
            if found != element:
                raise ValueError(f"{path}: describes element {found}, expected {element}")
            networks[element] = layers
        per_member.append(networks)
    layers_spec: Dict[str, List[LayerSpec]] = {}
    for element in elements:
        depth = {len(m[element]) for m in per_member}
        if len(depth) != 1:
            raise ValueError(f"{folder}: ensemble members disagree on the depth of the {element} network")
        layers_spec[element] = []
        for k in range(depth.pop()):
            codes = {m[element][k][2] for m in per_member}
            if len(codes) != 1:
                raise ValueError(f"{folder}: members disagree on the activation of {element} layer {k}")
            layers_spec[element].append(LayerSpec(
                np.stack([m[element][k][0] for m in per_member]).astype(np.float32),
                np.stack([m[element][k][1] for m in per_member]).astype(np.float32),
                codes.pop(),
            ))
    spec = ModelSpec(
        name or os.path.basename(os.path.normpath(folder)), elements, aev, self_energies, layers_spec,
        {"source": "NeuroChem folder", "folder": os.path.basename(os.path.normpath(folder)),
         "members": len(per_member)},
    )
    spec.validate()
    return spec
