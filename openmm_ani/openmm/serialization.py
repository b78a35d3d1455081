"""Reading serialized Systems that hold ``TorchForce`` objects.

``openmm.XmlSerializer.serialize`` writes a TorchForce (the TorchScript file hex-encoded in
``encodedFileContents``). With OpenMM 8.4-8.5 (the versions openmm-ani pins) ``XmlSerializer.deserialize``
reads it back too, but with the PyPI builds of openmmtorch 1.5 and OpenMM >= 8.6 the
C++ ``TorchForceProxy::deserialize`` crashes the process (a segmentation fault inside
``SerializationNode::getStringProperty``; the two libraries disagree on that class's
layout). :func:`deserialize_system` reads the same XML without that proxy: the top-level
TorchForce elements are rebuilt in Python from the encoded module, every other force goes
through ``XmlSerializer``, and the order of the forces is kept. A TorchForce nested in another
force (the ``CustomCVForce`` of an interpolating mixed system) can only be read by
``XmlSerializer``: :func:`~openmm_ani.openmm.openmmtorch.require_torchforce_copies` checks
first that this will not crash.
"""

import os
import tempfile
from typing import Any, List
from xml.etree import ElementTree

from .openmmtorch import import_openmmtorch, require_torchforce_copies


def deserialize_torch_force(element: ElementTree.Element) -> Any:
    """Rebuild an ``openmmtorch.TorchForce`` from its serialized XML element.

    Parameters
    ----------
    element
        A ``<Force type="TorchForce">`` element as written by ``XmlSerializer``.

    Returns
    -------
    openmmtorch.TorchForce

    Raises
    ------
    ValueError
        If the element holds no module (neither ``encodedFileContents`` nor a readable ``file``).
    """
    openmmtorch = import_openmmtorch()
    encoded = element.get("encodedFileContents")
    if encoded:
        with tempfile.TemporaryDirectory(prefix="openmm-ani-torchforce-") as folder:
            path = os.path.join(folder, "module.pt")
            with open(path, "wb") as handle:
                handle.write(bytes.fromhex(encoded))
            force = openmmtorch.TorchForce(path)
    elif element.get("file") and os.path.isfile(element.get("file", "")):
        force = openmmtorch.TorchForce(element.get("file"))
    else:
        raise ValueError("serialized TorchForce has neither encodedFileContents nor a readable file")
    force.setForceGroup(int(element.get("forceGroup", "0")))
    force.setUsesPeriodicBoundaryConditions(element.get("usesPeriodic", "0") == "1")
    force.setOutputsForces(element.get("outputsForces", "0") == "1")
    if element.get("name"):
        force.setName(element.get("name"))
    for parameter in element.findall("./GlobalParameters/Parameter"):
        force.addGlobalParameter(parameter.get("name"), float(parameter.get("default", "0")))
    for parameter in element.findall("./ParameterDerivatives/Parameter"):
        force.addEnergyParameterDerivative(parameter.get("name"))
    for prop in element.findall("./Properties/Property"):
        force.setProperty(prop.get("name"), prop.get("value"))
    return force


def deserialize_system(xml: str) -> Any:
    """``openmm.XmlSerializer.deserialize`` for a System, safe for TorchForces.

    Parameters
    ----------
    xml
        The output of ``openmm.XmlSerializer.serialize(system)``.

    Returns
    -------
    openmm.System
        Particles, constraints, virtual sites, box and forces (in their original order).

    Raises
    ------
    ValueError
        If ``xml`` is not a serialized System.
    openmm_ani.openmm.openmmtorch.TorchForceCopyError
        If a TorchForce is nested in another force and the installed OpenMM cannot read it.
    """
    import openmm

    root = ElementTree.fromstring(xml)
    if root.tag != "System":
        raise ValueError(f"not a serialized System (root element {root.tag!r})")
    forces_element = root.find("Forces")
    elements: List[ElementTree.Element] = [] if forces_element is None else list(forces_element)
    if any(child.get("type") != "TorchForce" and child.find(".//Force[@type='TorchForce']") is not None for child in elements):
        require_torchforce_copies()
    if forces_element is not None:
        for child in elements:
            forces_element.remove(child)
    system = openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    for child in elements:
        if child.get("type") == "TorchForce":
            system.addForce(deserialize_torch_force(child))
        else:
            system.addForce(openmm.XmlSerializer.deserialize(ElementTree.tostring(child, encoding="unicode")))
    return system
