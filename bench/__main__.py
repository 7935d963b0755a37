"""``make bench``: every benchmark, side by side in one run; writes ``bench/results.json``.

Each module under bench/ named ``*_bench.py`` exposes ``async def run() -> dict[str, float]``.
``python -m bench [NAME ...]`` runs only the named ones (``core``, ``economic``, ...).
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path

import anyio

HERE = Path(__file__).resolve().parent
ORDER = ("core", "economic", "ingest", "reconcile", "drift", "fullpass", "fleet",
         "payments", "expenses")


def main(argv: list[str]) -> int:
    names = argv or [n for n in ORDER if (HERE / f"{n}_bench.py").exists()]
    results: dict[str, float] = {}
    for name in names:
        module = importlib.import_module(f"bench.{name}_bench")
        start = time.perf_counter()
        figures: dict[str, float] = anyio.run(module.run)
        results.update(figures)
        sys.stdout.write(f"# {name}: {time.perf_counter() - start:.1f} s\n")
    out = HERE / "results.json"
    previous = json.loads(out.read_text()) if out.exists() and argv else {}
    out.write_text(json.dumps({**previous, **results}, indent=2, sort_keys=True) + "\n")
    width = max(len(k) for k in results)
    for key in sorted(results):
        sys.stdout.write(f"{key:<{width}}  {results[key]:>14,.2f}\n")
    sys.stdout.write(f"written to {out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
