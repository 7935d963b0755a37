"""``python -m daemon`` is ``moment-sync``."""

import sys

from daemon.cli import main

sys.exit(main())
