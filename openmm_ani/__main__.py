"""``python -m openmm_ani`` and the ``openmm-ani`` console script: the command line's process entry.

:func:`run` imports the command line itself, so that a Ctrl-C while its modules are imported
(before :func:`openmm_ani.cli.main` can catch it) ends the same way as later: one line and exit
status 130. The console script pip writes imports this module and calls :func:`run`.
"""

import sys

#: The one line and the exit status of an interrupted command (as in :mod:`openmm_ani.cli.common`, which
#: may not be imported yet when the interrupt comes).
INTERRUPTED_LINE = "openmm-ani: interrupted\n"
EXIT_INTERRUPTED = 130


def run() -> None:
    """Run the command line with ``sys.argv`` and exit with its status."""
    try:
        from .cli import main
    except KeyboardInterrupt:
        sys.stderr.write(INTERRUPTED_LINE)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(main())


if __name__ == "__main__":
    run()
