"""The e-conomic client (see DESIGN.md, Layers).

- :mod:`.client`: :class:`~.client.EconomicClient`, the endpoints the daemon uses;
- :mod:`.calling`: one HTTP call, error mapping, counters; :mod:`.limiting`: the rate limiter,
  which waits on the injected :class:`~daemon.core.clocks.Clock`; :mod:`.errors`: the error
  hierarchy;
- :mod:`.payloads`: msgspec Structs of every payload; :mod:`.filters`: filter expressions.

Imports only the core, aiohttp and msgspec; nothing from aiohttp escapes it.
"""
