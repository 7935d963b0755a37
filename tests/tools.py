"""Where the real third-party programs some tests run are found: unpacked by the Makefile's
test setup into the cache outside the repository, else on ``$PATH``; a test that needs one that
is absent skips, saying how to get it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: ``make test`` caches downloads here (the Makefile's CACHE); never inside the repository.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moment-sync"
#: Debian's ``prometheus`` package, unpacked (not installed) by the Makefile's test setup.
PROMETHEUS_BIN = CACHE / "prometheus" / "usr" / "bin"


def prometheus_or_skip(name: str) -> Path:
    """``prometheus`` or ``promtool`` from Debian's package, or skip the test saying why."""
    unpacked = PROMETHEUS_BIN / name
    if unpacked.is_file() and os.access(unpacked, os.X_OK):
        return unpacked
    found = shutil.which(name)
    if found:
        return Path(found)
    pytest.skip(f"{name} is not in {PROMETHEUS_BIN} nor on $PATH: `make test` unpacks Debian's "
                "prometheus package there (apt-get download prometheus), which failed or did "
                "not run on this machine")


#: Litestream v0.3.13 from the npm package ``@flydotio/litestream-linux-x64`` (the Makefile's
#: test setup downloads it; ``$LITESTREAM`` names another build).
LITESTREAM = Path(os.environ.get("LITESTREAM") or
                  CACHE / "litestream-linux-x64-1.0.1" / "litestream")
