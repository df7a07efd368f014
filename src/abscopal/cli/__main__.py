"""``python -m abscopal.cli``: the ``abscopal`` command."""

import sys

from . import main

sys.exit(main())
