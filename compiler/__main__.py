"""`python -m stepc`: the same as the `stepc` command."""

import sys

from stepc.cli import main

sys.exit(main())
