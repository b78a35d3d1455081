"""``python -m openmm_ani``: the ``openmm-ani`` command line.

Ctrl-C while the command line's own modules are imported (before :func:`openmm_ani.cli.main`
can catch it) ends the same way as later: one line and exit status 130.
"""

import sys

try:
    from .cli import main
except KeyboardInterrupt:
    sys.stderr.write("openmm-ani: interrupted\n")
    sys.exit(130)

sys.exit(main())
