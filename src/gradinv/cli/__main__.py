"""``python -m gradinv.cli``: the same as the ``gradinv`` command."""

import sys

from gradinv.cli import main

sys.exit(main())
