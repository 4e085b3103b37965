"""The one gateway to pmstore's optional libraries: pyarrow, polars, pandas and fsspec.

pmstore imports none of them until a frame is passed or asked for; ``require``
imports one then, or raises ConfigurationError naming the pmstore extra that
installs it (``pip install 'pmstore[arrow]'``, ``[polars]``, ``[pandas]``, ``[fsspec]``).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Final

from pmstore.errors import ConfigurationError

__all__ = ["EXTRA_OF", "require"]

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
