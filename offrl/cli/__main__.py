"""``python -m offrl.cli``: the ``offrl`` command."""

import sys

from offrl.cli import main

sys.exit(main())
