"""Other packages' chatter kept off the commands' output: banners, citation blocks, notices.

openmm-ani's commands print their results on stdout and their own progress and warnings on
stderr. The packages they call print more: openmmtools its "Please cite the following" block
(on stdout, with ``print``) and "the multistate API is experimental" (logging), pymbar a JAX
banner and a generic timeseries caveat (logging, at import), TorchANI import-time warnings
(``cuaev not installed``, ``pkg_resources is deprecated``, no ``torchani.ase``), and torch a
``requires_grad`` scalar-conversion warning raised inside openmm-ml's TorchANI module.

This module turns exactly those into DEBUG records (visible with
``logging.basicConfig(level=logging.DEBUG)``) or, for the warnings, ignores them, matched by
logger name or warning module and message; everything else passes unchanged, openmm-ani's own
warnings (:class:`~openmm_ani.kernels.KernelUnavailableWarning`, ...) and exceptions included.

* :func:`quiet_third_party` installs the logging filters and the warning filters (the command
  line calls it; calling it again changes nothing);
* :func:`stdout_to_debug` captures what one third-party call prints on ``sys.stdout``.
"""

import contextlib
import io
import logging
import re
import warnings
from typing import Iterator, Tuple

logger = logging.getLogger(__name__)

#: Third-party log records demoted to DEBUG: (logger name, regular expression searched in the message).
NOISY_RECORDS: Tuple[Tuple[str, str], ...] = (
    ("openmmtools.multistate.multistatesampler", r"multistate API is experimental"),
    ("openmmtools.multistate.multistatereporter", r"multistate API is experimental"),
    ("openmmtools.multistate.multistateanalyzer", r"multistate API is experimental"),
    ("pymbar.timeseries", r"^Warning on use of the timeseries module"),
    ("pymbar.mbar_solvers", r"JAX NOT FOUND"),
)

#: Third-party warnings ignored: (module regex, message regex), as :func:`warnings.filterwarnings` takes
#: them; the module is the one the warning is attributed to (pkg_resources' warning is attributed to
#: TorchANI, which imports it; torch's ``requires_grad`` warning to ``openmm.openmm``, which ran the module).
NOISY_WARNINGS: Tuple[Tuple[str, str], ...] = (
    (r"^torchani(\.|$)", r"^cuaev not installed"),
    (r"^torchani(\.|$)", r"^pkg_resources is deprecated"),
    (r"^torchani(\.|$)", r"^Dependency not satisfied, torchani\.ase"),
    (r"^openmm(\.|$)", r"^Converting a tensor with requires_grad=True to a scalar"),
)


class DemoteToDebug(logging.Filter):
    """Logger filter that turns the records of :data:`NOISY_RECORDS` into DEBUG records.

    Parameters
    ----------
    pattern
        Regular expression searched in the record's formatted message.
    """

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        """Demote a matching record to DEBUG (kept for handlers that want it); pass others unchanged."""
        if record.levelno > logging.DEBUG and self.pattern.search(record.getMessage()):
            record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


_FILTERS = {name: DemoteToDebug(pattern) for name, pattern in NOISY_RECORDS}


def quiet_third_party() -> None:
    """Demote the third-party log records of :data:`NOISY_RECORDS` to DEBUG; ignore :data:`NOISY_WARNINGS`.

    Installs a :class:`DemoteToDebug` filter on each logger of :data:`NOISY_RECORDS` (before
    the package is imported, so import-time records are caught) and an ``"ignore"`` entry in
    :mod:`warnings`' filters for each of :data:`NOISY_WARNINGS` (in front of the others;
    :func:`warnings.catch_warnings` restores them). Calling it again changes nothing.
    """
    for name, noise in _FILTERS.items():
        logging.getLogger(name).addFilter(noise)  # addFilter ignores a filter already there
    for module, message in NOISY_WARNINGS:
        # the same entry again replaces the old one (filterwarnings removes duplicates)
        warnings.filterwarnings("ignore", message=message, category=Warning, module=module)


@contextlib.contextmanager
def stdout_to_debug(what: str) -> Iterator[None]:
    """Capture what the enclosed third-party call prints on ``sys.stdout``; log it at DEBUG.

    Only for calls that print unconditionally (openmmtools' citation block in
    ``MultiStateSampler.create``/``from_storage``, TorchANI's resource path): openmm-ani's own
    output must not be written inside. Exceptions propagate; what was printed before them is
    still logged.

    Parameters
    ----------
    what
        Names the call in the DEBUG record.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            yield
    finally:
        text = captured.getvalue().strip()
        if text:
            logger.debug("%s printed:\n%s", what, text)
