"""``python -m adaptim``: the same command line as the ``adaptim`` script."""

import sys

from adaptim.cli import main

sys.exit(main())
