#!/usr/bin/env python3
"""Generate pmstore's sync modules from their async sources, as psycopg does.

    python scripts/async_to_sync.py            # rewrite the generated modules
    python scripts/async_to_sync.py --check    # exit 1 naming those out of date
    python scripts/async_to_sync.py --out DIR  # write them into DIR instead

``SOURCES`` maps each async module to the sync module generated from it.
The steps, in order:

1. ``unasync`` (token-based, so comments and layout survive) removes
   ``async``/``await`` and renames names through ``RENAMES`` (plus its own
   table: ``__aenter__`` -> ``__enter__``, ``AsyncIterator`` -> ``Iterator``, ...);
2. the same ``RENAMES`` as whole words in strings and comments, so that
   docstrings and messages name the sync classes, with the article before a
   renamed word fixed ("an AsyncWriter" -> "a Writer");
3. a comment line ``# sync: CODE`` becomes the line ``CODE`` (e.g. ``@property``
   over an accessor that the async class has as a coroutine method);
4. a header naming the source, then ruff (import and ``__all__`` order, format).

Needs the ``lint`` extra (unasync, ruff). ``tests/test_async_to_sync.py``
fails when a generated module is out of date.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SOURCES = {
    "pmstore/writer_async.py": "pmstore/writer.py",
    "pmstore/reader_async.py": "pmstore/reader.py",
    "pmstore/_write/connection_async.py": "pmstore/_write/connection.py",
}
"""Async source -> generated sync module, relative to the repository root."""

RENAMES = {
    "AsyncConnection": "Connection",
    "AsyncCursor": "Cursor",
    "AsyncConn": "Conn",
    "AsyncWriter": "Writer",
    "AsyncWriteConnection": "WriteConnection",
    "AsyncReader": "Reader",
    "AsyncConnFunction": "ConnFunction",
    "aclose": "close",
    "offload": "call_inline",
    "async_sleep": "sleep",
    "features_async": "features",
    "require_feature_async": "require_feature",
    "fetch_frame_async": "fetch_frame",
    "fetch_panel_async": "fetch_panel",
    "fetch_parallel_async": "fetch_parallel",
    "coverage_async": "coverage",
    "local_settings_async": "local_settings",
    "writer_async": "writer",
    "connection_async": "connection",
    "reader_async": "reader",
}
"""Async name -> sync twin (the twins of functions are in pmstore._twins)."""

HEADER = "# generated from {source} by scripts/async_to_sync.py: do not edit\n"

_SYNC_LINE = re.compile(r"^(?P<indent>[ \t]*)# sync: (?P<code>.*)$", re.MULTILINE)
_WORDS = re.compile(r"\b(" + "|".join(map(re.escape, RENAMES)) + r")\b")
_ARTICLE = re.compile(
    r"\b(?P<article>[Aa]n?) (?P<word>" + "|".join(map(re.escape, set(RENAMES.values()))) + r")\b"
)


def _article(match: re.Match[str]) -> str:
    """ "a"/"an" (capital kept) as the renamed word after it is spoken: by its first letter."""
    article, word = match["article"], match["word"]
    fitting = "an" if word[0].lower() in "aeiou" else "a"
    return f"{article[0]}{fitting[1:]} {word}"


def unasync_source(source: Path, target: Path) -> None:
    """Step 1: ``unasync`` of the file ``source`` into the file ``target`` (absolute paths)."""
    import unasync

    # A rule maps a path prefix to another: here the whole path, to the target's.
    rule = unasync.Rule(str(source), str(target), additional_replacements=RENAMES)
    unasync.unasync_files([str(source)], [rule])


def finish(text: str, source: str) -> str:
    """Steps 2-4 on unasync's output of ``source``: the generated module's text."""
    text = _WORDS.sub(lambda m: RENAMES[m.group(1)], text)
    text = _ARTICLE.sub(_article, text)
    text = _SYNC_LINE.sub(r"\g<indent>\g<code>", text)
    text = HEADER.format(source=source) + text
    filename = str(ROOT / SOURCES.get(source, source))
    ruff = [sys.executable, "-m", "ruff"]
    for command in (
        ["check", "--fix", "--select", "I,RUF022", "--quiet", "--stdin-filename", filename, "-"],
        ["format", "--quiet", "--stdin-filename", filename, "-"],
    ):
        done = subprocess.run(
            ruff + command, input=text, capture_output=True, text=True, cwd=ROOT, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"ruff {command[0]} failed on {source}:\n{done.stderr}{done.stdout}")
        text = done.stdout
    return text


def generate(out: Path) -> dict[str, Path]:
    """Generate every module of ``SOURCES`` into ``out`` (same relative paths)."""
    written: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for source, generated in SOURCES.items():
            raw = Path(tmp) / Path(generated).name
            unasync_source(ROOT / source, raw)
            target = out / generated
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(finish(raw.read_text(), source))
            written[generated] = target
    return written


def stale(out: Path) -> list[str]:
    """The generated modules in the repository that differ from a fresh generation in ``out``."""
    fresh = generate(out)
    return [
        name
        for name, path in fresh.items()
        if not (ROOT / name).exists() or (ROOT / name).read_text() != path.read_text()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report modules out of date")
    parser.add_argument("--out", type=Path, help="write into this folder instead of the repo")
    args = parser.parse_args(argv)
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            outdated = stale(Path(tmp))
        for name in outdated:
            print(f"{name} is out of date: run scripts/async_to_sync.py", file=sys.stderr)
        return 1 if outdated else 0
    for name, path in generate(args.out or ROOT).items():
        print(f"generated {path if args.out else name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
