"""``import pmstore`` is cheap: the embedded server, yoyo and the CLI load on first use."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pmstore

# What `import pmstore` must not load: the embedded server and what it needs,
# the migrations (yoyo, which loads argparse), the command line.
HEAVY = {
    "pmstore.server",
    "pmstore.cli",
    "pmstore.migrations",
    "pmstore.demo",
    "subprocess",
    "platformdirs",
    "pwd",
    "yoyo",
    "argparse",
}


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    out = subprocess.run(
        [
            sys.executable,
            "-P",
            "-c",
            f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_import_pmstore_loads_neither_the_server_nor_the_cli() -> None:
    loaded = modules_after("import pmstore; pmstore.PmstoreError")
    assert "pmstore" in loaded and "pmstore.errors" in loaded
    assert not loaded & HEAVY, sorted(loaded & HEAVY)
    # Not even the Writer's dependencies, until the Writer is used.
    assert not loaded & {"pmstore.writer", "psycopg", "numpy", "pydantic"}


def test_the_writer_loads_without_the_server_or_the_cli() -> None:
    loaded = modules_after("from pmstore import Writer, PriceSnapshot")
    assert {"pmstore.writer", "pmstore.models", "psycopg"} <= loaded
    assert not loaded & {"pmstore.server", "pmstore.cli", "platformdirs", "yoyo"}


def test_the_server_loads_on_first_use() -> None:
    loaded = modules_after("import pmstore; pmstore.EmbeddedServer")
    assert {"pmstore.server", "platformdirs"} <= loaded


def test_every_public_name_resolves_to_its_module_attribute() -> None:
    for name in pmstore.__all__:
        value = getattr(pmstore, name)
        if name in pmstore._LAZY:
            module, attribute = pmstore._LAZY[name]
            assert value is getattr(sys.modules[module], attribute), name
    assert set(pmstore.__all__) <= set(dir(pmstore))
    assert pmstore.__version__
    with pytest.raises(AttributeError, match="no_such_name"):
        pmstore.no_such_name  # noqa: B018


def test_lazy_names_match_the_imports_mypy_sees() -> None:
    """The TYPE_CHECKING imports (for mypy) and the lazy table name the same things."""
    tree = ast.parse(Path(pmstore.__file__).read_text())
    typed: dict[str, tuple[str, str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in node.body:
                assert isinstance(stmt, ast.ImportFrom) and stmt.module
                for alias in stmt.names:
                    typed[alias.asname or alias.name] = (stmt.module, alias.name)
    assert typed == pmstore._LAZY
    eager = set(pmstore.__all__) - set(pmstore._LAZY)
    assert all(getattr(pmstore, n).__module__ == "pmstore.errors" for n in eager)


def test_reading_feed_gaps_loads_none_of_the_recorders_clients() -> None:
    """The Reader, status and ``pmstore.recorder.health`` read the recorder's tables without
    loading the recorder itself (aiohttp, prometheus-client): ``pmstore.recorder`` is lazy."""
    loaded = modules_after("import pmstore.reader, pmstore.status, pmstore.recorder.health")
    assert {"pmstore.recorder", "pmstore.recorder.health"} <= loaded
    heavy = {"aiohttp", "prometheus_client", "pmstore.recorder._recorder", "pmstore.simulator"}
    assert not loaded & heavy, sorted(loaded & heavy)
    recorder = modules_after("from pmstore.recorder import Recorder, GAP_REASONS")
    assert {"aiohttp", "pmstore.recorder._recorder", "pmstore.recorder.derive"} <= recorder
