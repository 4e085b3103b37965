"""The sync Writer, its connection and the Reader are generated from their async sources, and
up to date."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def generator() -> ModuleType:
    path = ROOT / "scripts" / "async_to_sync.py"
    spec = importlib.util.spec_from_file_location("async_to_sync", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("async_to_sync", module)
    spec.loader.exec_module(module)
    return module


def test_generated_modules_are_up_to_date(tmp_path: Path) -> None:
    gen = generator()
    fresh = gen.generate(tmp_path)
    assert set(fresh) == {"pmstore/writer.py", "pmstore/reader.py", "pmstore/_write/connection.py"}
    for name, path in fresh.items():
        text = path.read_text()
        source = next(s for s, g in gen.SOURCES.items() if g == name)
        assert text.startswith(f"# generated from {source} by scripts/async_to_sync.py")
        assert (ROOT / name).read_text() == text, (
            f"{name} is out of date with {source}: run python scripts/async_to_sync.py"
        )


def test_generated_code_has_no_async_left() -> None:
    for name in ("pmstore/writer.py", "pmstore/reader.py", "pmstore/_write/connection.py"):
        text = (ROOT / name).read_text()
        for word in ("async ", "await ", "AsyncConnection", "offload(", "asyncio"):
            assert word not in text, (name, word)


def test_generator_steps_on_a_snippet(tmp_path: Path) -> None:
    """Renames in code, strings and comments; ``# sync:`` lines; the header; formatting."""
    gen = generator()
    source = tmp_path / "thing_async.py"
    source.write_text(
        "import psycopg\n"
        "from pmstore._twins import offload\n\n\n"
        "class AsyncWriter:\n"
        '    """Each AsyncWriter owns one psycopg AsyncConnection."""\n\n'
        "    # sync: @property\n"
        "    async def pid(self) -> int:\n"
        "        conn = await psycopg.AsyncConnection.connect('')  # the AsyncConnection\n"
        "        return await offload(int,   conn.info.backend_pid)\n\n"
        "    async def __aenter__(self) -> AsyncWriter:\n"
        "        return self\n\n"
        "    async def aclose(self) -> None:\n"
        "        async with psycopg.AsyncConnection.connect('') as c:\n"
        "            await c.close()\n"
    )
    raw = tmp_path / "thing.py"
    gen.unasync_source(source, raw)
    text = gen.finish(raw.read_text(), "pmstore/thing_async.py")
    assert text == (
        "# generated from pmstore/thing_async.py by scripts/async_to_sync.py: do not edit\n"
        "import psycopg\n\n"
        "from pmstore._twins import call_inline\n\n\n"
        "class Writer:\n"
        '    """Each Writer owns one psycopg Connection."""\n\n'
        "    @property\n"
        "    def pid(self) -> int:\n"
        '        conn = psycopg.Connection.connect("")  # the Connection\n'
        "        return call_inline(int, conn.info.backend_pid)\n\n"
        "    def __enter__(self) -> Writer:\n"
        "        return self\n\n"
        "    def close(self) -> None:\n"
        '        with psycopg.Connection.connect("") as c:\n'
        "            c.close()\n"
    )
