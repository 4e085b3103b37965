"""pmstore's migrations up to a given step, as a yoyo source of their own.

``migrations.apply(dsn, source=up_to(...))`` applies only the steps up to
that one (and the post-apply hook): a database as an earlier pmstore left
it, to test a later step's conversion. The files are copied unchanged, so
their checksums are the shipped ones and a later ``migrations.apply(dsn)``
applies the rest without any drift.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pmstore import migrations


def up_to(last: str, folder: Path) -> Path:
    """Copy the migrations up to ``last`` (an id such as ``0013_orderbook_levels_arrays``),
    their rollbacks and the post-apply hook into ``folder``; return it."""
    source = migrations.migrations_dir()
    if not (source / f"{last}.sql").is_file():
        raise ValueError(f"no migration {last} in {source}")
    folder.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.sql"):
        step = path.name.removesuffix(".sql").removesuffix(".rollback")
        if path.name == "post-apply.sql" or step <= last:
            shutil.copyfile(path, folder / path.name)
    return folder


def applied_after(dsn: str, step: str) -> list[str]:
    """The applied migrations newer than ``step``, oldest first."""
    applied = migrations.status(dsn).applied
    return applied[applied.index(step) + 1 :]
