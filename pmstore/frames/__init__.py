"""DataFrames in and out of pmstore: pandas, polars and pyarrow (optional extras).

- ``inbound``: a pandas or polars DataFrame, or a pyarrow Table, as a batch
  (``Writer.copy_prices`` & co. accept them through ``pmstore.batches.as_batch``);
- ``copy_decoding``: PostgreSQL binary ``COPY ... TO`` bytes -> a pyarrow Table
  (a pure function, shared by the sync and async readers);
- ``outbound``: the Reader's queries fetched as ``COPY (SELECT ...) TO STDOUT``
  and returned as a pyarrow Table, a polars or a pandas DataFrame.

Importing this package imports none of pandas, polars or pyarrow: each is
imported when first needed, and a missing one raises ConfigurationError naming
the extra to install.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require"]

_EXTRA_OF = {"pyarrow": "arrow", "polars": "polars", "pandas": "pandas"}


def require(module: str) -> ModuleType:
    """Import ``module`` (pyarrow, polars or pandas), or raise ConfigurationError naming
    the pmstore extra that installs it. Costs an import the first time."""
    from pmstore.errors import ConfigurationError

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRA_OF.get(module, module)
        raise ConfigurationError(
            f"{module} is not installed: pip install 'pmstore[{extra}]'"
        ) from exc
