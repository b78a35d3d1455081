"""Loading openmm-torch correctly: ``import_openmmtorch`` is the one place that imports it.

openmmtorch 1.5 from PyPI must be imported after ``torch`` (it links against libtorch and
fails to find its libraries otherwise), and if ``openmm`` was imported before torch, OpenMM
could not load the openmm-torch kernel plugins at that moment; :func:`reload_torch_plugins`
loads them again once torch is in the process.
"""

import logging
import os
import re
import tempfile
from typing import Any, List

logger = logging.getLogger(__name__)

_SIMTK_NOTICE = "Warning: importing 'simtk.openmm' is deprecated"


class _DropSimtkNotice(logging.Filter):
    """Drop the deprecation notice openmmtorch's ``import simtk.openmm`` logs on the root logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_SIMTK_NOTICE)


def import_openmmtorch() -> Any:
    """Import and return the ``openmmtorch`` module, importing ``torch`` first.

    openmmtorch 1.5 wheels load libtorch symbols that are only resolvable once ``torch``
    is imported. This also covers scripts that ran ``import openmm`` before torch was
    loaded: OpenMM then failed to load the openmm-torch kernel plugins at its import
    (``libnvrtc`` not found), and they are loaded again here, now that torch is in the
    process (see :func:`reload_torch_plugins`). The deprecation notice openmmtorch triggers
    through ``simtk.openmm`` is filtered out.

    Returns
    -------
    module
        The ``openmmtorch`` module.
    """
    import torch  # noqa: F401  (must precede openmmtorch)

    root = logging.getLogger()
    notice_filter = _DropSimtkNotice()
    root.addFilter(notice_filter)
    try:
        import openmmtorch
    finally:
        root.removeFilter(notice_filter)
    reload_torch_plugins()
    return openmmtorch


_PLUGINS_CHECKED = False


def reload_torch_plugins() -> List[str]:
    """Load openmm-torch kernel plugins that OpenMM failed to load before torch was imported.

    ``import openmm`` loads every plugin in OpenMM's plugin folder; the openmm-torch ones
    fail when libtorch is not yet in the process, leaving ``TorchForce`` without kernels
    ("does not support all required kernels"). With torch imported, those libraries load;
    they are loaded through a temporary folder of links so that no other plugin (and no
    platform) is registered twice. Runs once per process.

    Returns
    -------
    list of str
        The plugin libraries loaded now (empty when nothing had failed).
    """
    global _PLUGINS_CHECKED
    if _PLUGINS_CHECKED:
        return []
    _PLUGINS_CHECKED = True
    import openmm

    failed = []
    for message in openmm.Platform.getPluginLoadFailures():
        match = re.match(r"Error loading library (\S+?): ", message)
        if match and "OpenMMTorch" in os.path.basename(match.group(1)) and os.path.isfile(match.group(1)):
            failed.append(match.group(1))
    if not failed:
        return []
    with tempfile.TemporaryDirectory(prefix="openmm-ani-plugins-") as folder:
        for library in failed:
            os.symlink(library, os.path.join(folder, os.path.basename(library)))
        loaded = [os.path.basename(path) for path in openmm.Platform.loadPluginsFromDirectory(folder)]
        for message in openmm.Platform.getPluginLoadFailures():
            logger.debug("openmm-torch plugin still not loadable: %s", message)
    logger.debug("loaded openmm-torch plugins after torch: %s", loaded)
    return loaded


