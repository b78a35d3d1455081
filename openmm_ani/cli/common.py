"""What every ``openmm-ani`` subcommand shares: the parser class, error reporting, output.

Expected failures (missing or unreadable files, bad arguments, unsupported elements, NaN
coordinates, errors raised inside the TorchScript module during MD) end with one line
``openmm-ani: error: ...`` on stderr and exit status 1; Ctrl-C ends with exit status 130.
"""

import argparse
import os
import re
import sys
from typing import Any, List, NoReturn, Optional, TextIO, Tuple

PROG = "openmm-ani"

#: Exit status of a failed command (argparse's usage errors included).
EXIT_FAILURE = 1
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Exit status when stdout's reader closed the pipe (128 + SIGPIPE, what a shell reports for `yes | head`).
EXIT_BROKEN_PIPE = 141

#: The line of a TorchScript interpreter error that states the cause (the error raised inside the module).
_TORCHSCRIPT_CAUSE = re.compile(r"^\s*(?:builtins\.)?([A-Za-z_.]*(?:Error|Exception)): (.+)$")
_TORCHSCRIPT_MARKER = "The following operation failed in the TorchScript interpreter"


class CommandError(Exception):
    """A user-facing error of a subcommand (reported as one line, exit status 1)."""


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` with openmm-ani's error convention: one line, exit status 1."""

    def error(self, message: str) -> NoReturn:
        command = self.prog[len(PROG):].strip() if self.prog.startswith(PROG) else self.prog
        emit(f"{PROG}: error: {command + ': ' if command else ''}{message}", sys.stderr)
        sys.exit(EXIT_FAILURE)


def emit(text: str = "", stream: Optional[TextIO] = None) -> None:
    """Write one line of command output (stdout unless ``stream`` is given)."""
    out = sys.stdout if stream is None else stream
    out.write(text + "\n")
    out.flush()


def quiet_stdout() -> None:
    """Point file descriptor 1 at /dev/null, so that the interpreter's final flush of a closed pipe stays silent."""
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout replaced by an object without a descriptor (tests): nothing to flush
        pass
    finally:
        os.close(null)


def error_line(error: BaseException) -> str:
    """The one line that explains ``error`` to a user.

    For errors raised inside a TorchScript module (OpenMM reports them with the interpreter's
    traceback) this is the line of the original exception, not the interpreter's banner.
    """
    text = str(error).strip()
    if isinstance(error, KeyError) and error.args:
        return f"missing key {error.args[0]!r}"
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    if _TORCHSCRIPT_MARKER in text:
        causes = [_TORCHSCRIPT_CAUSE.match(line) for line in lines]
        found = [match.group(2).strip() for match in causes if match]
        if found:
            return found[-1]
    return lines[0]


def expected_errors() -> Tuple[type, ...]:
    """Exception types reported as one line (anything else is a bug and keeps its traceback)."""
    errors: List[type] = [CommandError, ValueError, OSError, KeyError, NotImplementedError]
    import openmm

    from ..openmm.openmmtorch import TorchForceCopyError

    errors += [openmm.OpenMMException, TorchForceCopyError]
    return tuple(errors)


def model_arguments(parser: argparse.ArgumentParser, precision: str) -> None:
    """Add ``--model``, ``--model-index`` and ``--precision``."""
    parser.add_argument("--model", default="ani1ccx", help="model name (ani1ccx, ani1x) or model file (default ani1ccx)")
    parser.add_argument("--model-index", type=int, default=None, help="use one ensemble member (default: ensemble)")
    parser.add_argument("--precision", choices=["single", "double"], default=precision, help=f"(default {precision})")


def potential_from_args(args: Any) -> Any:
    """The :class:`~openmm_ani.ANIPotential` of ``--model``, ``--model-index``, ``--precision``."""
    from ..openmm import ANIPotential

    return ANIPotential(args.model, model_index=args.model_index, precision=args.precision)
