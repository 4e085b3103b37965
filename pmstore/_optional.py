"""The one gateway to pmstore's optional libraries: pyarrow, polars, pandas and fsspec,
and to its own optional compiled module (``pmstore._copydata``, see ``compiled_module``).

pmstore imports none of them until a frame is passed or asked for; ``require``
imports one then, or raises ConfigurationError naming the pmstore extra that
installs it (``pip install 'pmstore[arrow]'``, ``[polars]``, ``[pandas]``, ``[fsspec]``).
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Final

from pmstore.errors import ConfigurationError

__all__ = ["EXTRA_OF", "compiled_module", "require"]

EXTRA_OF: Final = {"pyarrow": "arrow", "polars": "polars", "pandas": "pandas", "fsspec": "fsspec"}
"""The pmstore extra that installs each optional library (by its top-level package)."""


def require(module: str) -> ModuleType:
    """Import ``module`` (pyarrow, polars, pandas, fsspec or one of their submodules), or
    raise ConfigurationError naming the pmstore extra that installs it. Costs an import
    the first time."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.partition(".")[0]
        extra = EXTRA_OF.get(package, package)
        raise ConfigurationError(
            f"{package} is not installed: pip install 'pmstore[{extra}]'"
        ) from exc


@functools.cache
def compiled_module() -> ModuleType | None:
    """pmstore's compiled module ``pmstore._copydata`` (pmstore/_copydata.c: the bulk
    reads' message loop and row walk), or None when pmstore was built without it (no
    C compiler): callers then run the same steps in Python. Imported once."""
    try:
        return importlib.import_module("pmstore._copydata")
    except ImportError:
        return None
