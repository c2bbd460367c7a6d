"""``python -m backtrader_alltick`` runs the ``alltick-bt`` command."""

import sys

from .cli import main

sys.exit(main())
