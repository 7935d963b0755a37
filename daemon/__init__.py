"""moment-sync: keeps Visma e-conomic in step with Moment."""

import sys

__version__ = "0.1.0"

# structlog imports rich, when some other package installed it, to pretty-print tracebacks and
# their locals; the daemon renders neither with it (daemon/ops/logging.py: plain tracebacks,
# no locals). Importing it anyway costs each daemon about 0.1 s of CPU at start and 3 MB of
# memory, times every agreement on the host (bench fleet). A None entry makes `import rich`
# raise ImportError, which structlog takes as "not installed"; a process that imported rich
# before us keeps it.
sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
