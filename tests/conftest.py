"""Shared fixtures: anyio's pytest plugin pinned to asyncio, and where ``../shared`` lives."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def shared_or_skip(*parts: str) -> Path:
    """The path under ``../shared``, or skip the test saying why (a user's own clone)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: the official e-conomic specs live in ../shared, "
                    "which a user's own clone does not have; CI has it")
    return path
