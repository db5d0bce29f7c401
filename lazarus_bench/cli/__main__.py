"""``python -m lazarus_bench.cli COMMAND ...``: the same as the ``lazarus-bench`` console script."""

import sys

from . import main

sys.exit(main())
