"""``python -m openmm_ani``: the ``openmm-ani`` command line."""

import sys

from .cli import main

sys.exit(main())
