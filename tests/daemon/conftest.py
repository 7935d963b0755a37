"""Fixtures for the daemon-as-a-subprocess tests: sandboxes per module, on a background loop."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.daemon import harness


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[harness.Sandboxes]:
    with harness.Sandboxes() as sb:
        yield sb


@pytest.fixture(scope="session", autouse=True)
def _remove_state_dirs() -> Iterator[None]:
    """State directories go at the end (``KEEP_DAEMON_TEST_DIRS=1`` keeps them to look at)."""
    yield
    if os.environ.get("KEEP_DAEMON_TEST_DIRS") != "1":
        for path in harness.MADE_DIRS:
            shutil.rmtree(path, ignore_errors=True)
