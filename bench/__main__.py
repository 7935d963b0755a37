"""``make bench``: every benchmark, side by side in one run; writes ``bench/results.json``.

Each module under bench/ named ``*_bench.py`` exposes ``async def run() -> dict[str, float]``.
``python -m bench [NAME ...]`` runs only the named ones (``core``, ``economic``, ...). With more
than one to run, each runs in a fresh process of its own, so that memory one bench held (the
allocator keeps what it got) never counts in another's figures (``reconcile.full_pass_rss_mb``).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
ORDER = ("core", "economic", "ingest", "reconcile", "drift", "fullpass", "fleet",
         "payments", "expenses")


def main(argv: list[str]) -> int:
    names = argv or [n for n in ORDER if (HERE / f"{n}_bench.py").exists()]
    out = HERE / "results.json"
    if len(names) > 1:
        if not argv:
            out.unlink(missing_ok=True)  # a full run starts afresh
        for name in names:  # each in a process of its own, adding to results.json
            subprocess.run([sys.executable, "-m", "bench", name], check=True,
                           cwd=HERE.parent)
        _table(json.loads(out.read_text()))
        sys.stdout.write(f"written to {out}\n")
        return 0
    results: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}_bench")
        start = time.perf_counter()
        figures: dict[str, float] = anyio.run(module.run)
        results.update(figures)
        sys.stdout.write(f"# {name}: {time.perf_counter() - start:.1f} s\n")
    previous = json.loads(out.read_text()) if out.exists() else {}
    out.write_text(json.dumps({**previous, **results}, indent=2, sort_keys=True) + "\n")
    _table(results)
    sys.stdout.write(f"written to {out}\n")
    return 0


def _table(results: dict[str, float]) -> None:
    width = max(len(k) for k in results)
    for key in sorted(results):
        sys.stdout.write(f"{key:<{width}}  {results[key]:>14,.2f}\n")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
