"""``python -m pmstore``: the same as the ``pmstore`` command."""

import sys

from pmstore.cli import main

sys.exit(main())
