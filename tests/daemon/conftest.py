"""Fixtures for the daemon-as-a-subprocess tests: sandboxes per module, on a background loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon import harness


@pytest.fixture(scope="module")
def sandboxes() -> Iterator[harness.Sandboxes]:
    with harness.Sandboxes() as sb:
        yield sb
