"""The host's clock: the real implementation of :class:`daemon.core.clocks.Clock`.

Wall time from the host, monotonic time from the event loop's clock (asyncio's is monotonic),
waiting through anyio. The composition root builds one and passes it down; tests pass a fake.
Never used for what is recorded as a fact's time by Moment or e-conomic: that is theirs.
"""

from __future__ import annotations

import time

import anyio


class SystemClock:
    """The host's time (see module doc)."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return anyio.current_time()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(max(0.0, seconds))
