"""The layering rule (DESIGN.md, Layers), checked mechanically by import-linter's contracts in
pyproject.toml: the core imports no I/O library; only the CLI, demo and tests import the
sandboxes; the sandboxes share no code with the clients they stand in for."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

IO_LIBRARIES = {"aiohttp", "aiosqlite", "anyio", "structlog", "sqlite3", "asyncio", "socket",
                "aiosmtplib", "prometheus_client"}


def test_import_linter_contracts_hold() -> None:
    binary = Path(REPO / ".venv" / "bin" / "lint-imports")
    command = str(binary) if binary.exists() else shutil.which("lint-imports")
    if command is None:
        pytest.skip("lint-imports is not installed (make venv installs it)")
    result = subprocess.run([command, "--no-cache"], cwd=REPO, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_core_imports_no_io_library_even_inside_functions() -> None:
    """import-linter sees module-level imports; this also catches ones inside functions."""
    for path in (REPO / "daemon" / "core").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert root not in IO_LIBRARIES, f"{path.name} imports {name}"
                assert not name.startswith("daemon.") or name.startswith("daemon.core"), (
                    f"{path.name} imports {name}")


#: What the core may import besides the standard library and itself (DESIGN.md, Layers):
#: msgspec, and pycountry's ISO 3166 data for country names (daemon/core/countries.py).
CORE_MAY_IMPORT = {"msgspec", "pycountry"}


def test_core_imports_only_stdlib_msgspec_and_pycountry() -> None:
    for path in (REPO / "daemon" / "core").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module]
            for name in names:
                root = name.split(".")[0]
                assert (root in sys.stdlib_module_names or root in CORE_MAY_IMPORT
                        or name.startswith("daemon.core") or root == "__future__"), (
                    f"{path.name} imports {name}")
