"""``python -m stockpipe.cli``: the ``stockpipe`` command."""

import sys

from stockpipe.cli import main

sys.exit(main())
