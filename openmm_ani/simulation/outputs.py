"""The output files of an MD job, written fresh or continued exactly where a checkpoint left them.

:class:`MDOutputs` owns the three streams of a job (DCD trajectory, state-data CSV, ensemble
disagreement CSV) and reports their sizes for the job's checkpoint. Continuing a run, it first
cuts every file back to its size at the checkpoint (dropping frames and lines written after it,
a frame half-written when the process was killed included) and sets the DCD header's frame
count to match, then appends. :class:`TrajectoryReporter` writes DCD frames with OpenMM's
``DCDFile`` on the stream it is given, so a failure to open the file is an ``OSError`` naming it
(OpenMM's ``DCDReporter`` opens the file itself and then fails again in ``__del__``).
"""

import os
import struct
from typing import IO, Any, Dict, Optional

#: Output kinds, in the order of :meth:`MDSettings.paths`.
KINDS = ("trajectory", "state_data", "disagreement")

#: Byte offset of the frame count in a DCD header (OpenMM writes little-endian files).
_DCD_COUNT_OFFSET = 8


class TrajectoryReporter:
    """DCD frames every ``interval`` steps on an open binary stream.

    Parameters
    ----------
    stream
        Binary stream opened for writing (``"wb"``) or, to continue a file, ``"r+b"``.
    interval
        Steps between frames.
    append
        Continue the DCD file in ``stream`` (its header gives the frames already there).
    """

    def __init__(self, stream: IO[bytes], interval: int, append: bool) -> None:
        self._stream = stream
        self._interval = int(interval)
        self._append = bool(append)
        self._dcd: Any = None
        #: Frames written by this reporter.
        self.frames = 0

    def describeNextReport(self, simulation: Any) -> Dict[str, Any]:
        """Steps to the next frame; positions wrapped as OpenMM's DCDReporter does by default."""
        steps = self._interval - simulation.currentStep % self._interval
        return {"steps": steps, "periodic": None, "include": ["positions"]}

    def report(self, simulation: Any, state: Any) -> None:
        """Write one frame."""
        from openmm import app

        if self._dcd is None:
            self._dcd = app.DCDFile(self._stream, simulation.topology, simulation.integrator.getStepSize(),
                                    self._interval, self._interval, self._append)
        self._dcd.writeModel(state.getPositions(asNumpy=True), periodicBoxVectors=state.getPeriodicBoxVectors())
        self.frames += 1


class MDOutputs:
    """The open output streams of one MD job.

    Parameters
    ----------
    paths
        Output file of each kind in :data:`KINDS`.
    sizes
        ``None`` to start the files afresh; otherwise the size in bytes of each file at the
        checkpoint being continued.
    frames
        DCD frames at the checkpoint (with ``sizes``).

    Raises
    ------
    ValueError
        If a file to continue is missing or shorter than at the checkpoint (changed since).
    OSError
        If a file cannot be opened (naming it).
    """

    def __init__(self, paths: Dict[str, str], sizes: Optional[Dict[str, int]] = None, frames: int = 0) -> None:
        self.paths = dict(paths)
        self.appending = {kind: bool(sizes and sizes.get(kind, 0)) for kind in KINDS}
        if sizes is not None:
            for kind in KINDS:
                _cut_back(self.paths[kind], sizes.get(kind, 0))
            if self.appending["trajectory"]:
                _set_dcd_frames(self.paths["trajectory"], frames)
        self.streams: Dict[str, IO[Any]] = {}
        try:
            for kind in KINDS:
                binary = kind == "trajectory"
                mode = ("r+b" if binary else "a") if self.appending[kind] else ("wb" if binary else "w")
                self.streams[kind] = open(self.paths[kind], mode)
        except BaseException:
            self.close()
            raise

    def sizes(self) -> Dict[str, int]:
        """Flush every stream and return the file sizes in bytes."""
        out = {}
        for kind, stream in self.streams.items():
            stream.flush()
            out[kind] = os.fstat(stream.fileno()).st_size
        return out

    def close(self) -> None:
        """Close every stream (idempotent)."""
        for stream in self.streams.values():
            if not stream.closed:
                stream.close()


def _cut_back(path: str, size: int) -> None:
    """Truncate ``path`` to ``size`` bytes; refuse a missing or shorter file."""
    actual = os.path.getsize(path) if os.path.isfile(path) else -1
    if actual < size:
        found = "missing" if actual < 0 else f"{actual} bytes"
        raise ValueError(
            f"{path} is {found}, but it had {size} bytes at the checkpoint: it was changed after the run, "
            "so the run cannot be continued; start afresh with --overwrite or a new --output"
        )
    if actual > size:
        os.truncate(path, size)


def _set_dcd_frames(path: str, frames: int) -> None:
    """Write ``frames`` as the frame count of the (OpenMM, little-endian) DCD file ``path``."""
    with open(path, "r+b") as stream:
        stream.seek(_DCD_COUNT_OFFSET)
        stream.write(struct.pack("<i", int(frames)))
