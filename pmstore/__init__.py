"""pmstore: the storage layer of a Polymarket data-collection pipeline on TimescaleDB.

    from pmstore import Writer, migrate
    migrate(dsn)                          # the schema (yoyo migrations)
    with Writer(dsn) as w:
        w.copy_prices({"ts": ts, "token_id": tokens, "price": prices})

Modules, one per responsibility:

- ``pmstore.models``        pydantic records of the five tables
- ``pmstore.batches``       columnar batches and their vectorized validation
- ``pmstore._write.encoding`` binary COPY encoding (numpy, orjson)
- ``pmstore._write.pipeline`` batches -> byte-bounded COPY chunks, encoded ahead in a thread
- ``pmstore.writer_async``  AsyncWriter, the source of ``pmstore.writer`` (Writer, generated)
- ``pmstore._write.connection_async`` the writers' connection and retried transactions (base class)
- ``pmstore._write.plan``    the writers' I/O-free parts: checks, plans, SQL, WriteResult
- ``pmstore.reader_async``  AsyncReader, the source of ``pmstore.reader`` (Reader, generated)
- ``pmstore._read.queries``  the readers' SQL and result models
- ``pmstore.frames``        DataFrames in and out (pyarrow, polars, pandas; optional)
- ``pmstore.export``        Parquet export per UTC day (``pmstore export``)
- ``pmstore._read.coverage``      gaps in the price snapshots (``pmstore coverage``)
- ``pmstore.refresh``       continuous aggregates under late data (``pmstore refresh``)
- ``pmstore._write.retention``     retention horizons: rows older than the policy's
- ``pmstore.migrations``    apply / roll back / inspect the schema, drift
- ``pmstore.edition``       server versions, TimescaleDB edition and features
- ``pmstore.server``        EmbeddedServer: a local TimescaleDB pmstore starts itself
- ``pmstore.polymarket``    Polymarket API payloads -> records (one module per source)
- ``pmstore.ingest``        recorded files of payloads -> the Writer (``pmstore ingest``)
- ``pmstore.synthetic``     realistic synthetic market data (demo, benchmarks)
- ``pmstore.demo``          ``pmstore demo``: the main job on synthetic data
- ``pmstore.status``        ``pmstore status``: the state of a deployment
- ``pmstore.dsn``           connection strings: sources, redaction, yoyo URLs
- ``pmstore.cli``           the ``pmstore`` command line, one module per command
- ``pmstore.errors``        the error hierarchy

``import pmstore`` loads only the error hierarchy; every other name here is
imported on first use (PEP 562), so the embedded server (subprocess,
platformdirs), yoyo and the command line cost nothing until they are used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pmstore.errors import (
    BatchValidationError,
    ConfigurationError,
    ConnectionLostError,
    FeatureUnavailableError,
    MigrationError,
    MigrationLockError,
    PayloadError,
    PmstoreError,
    RowProblem,
    ServerError,
    WriteError,
)

if TYPE_CHECKING:
    from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
    from pmstore.migrations import apply as migrate
    from pmstore.models import (
        MarketRecord,
        OrderbookSnapshot,
        PriceSnapshot,
        ResolutionRecord,
        TradeRecord,
        record_to_model,
    )
    from pmstore.reader import Reader
    from pmstore.reader_async import AsyncReader
    from pmstore.server import EmbeddedServer
    from pmstore.writer import Writer, WriteResult
    from pmstore.writer_async import AsyncWriter

__version__ = "0.1.0"

__all__ = [
    "AsyncReader",
    "AsyncWriter",
    "BatchValidationError",
    "ConfigurationError",
    "ConnectionLostError",
    "EmbeddedServer",
    "FeatureUnavailableError",
    "MarketRecord",
    "MigrationError",
    "MigrationLockError",
    "OrderbookBatch",
    "OrderbookSnapshot",
    "PayloadError",
    "PmstoreError",
    "PriceBatch",
    "PriceSnapshot",
    "Reader",
    "ResolutionRecord",
    "RowProblem",
    "ServerError",
    "TradeBatch",
    "TradeRecord",
    "WriteError",
    "WriteResult",
    "Writer",
    "migrate",
    "record_to_model",
]

_LAZY: dict[str, tuple[str, str]] = {
    "AsyncReader": ("pmstore.reader_async", "AsyncReader"),
    "AsyncWriter": ("pmstore.writer_async", "AsyncWriter"),
    "EmbeddedServer": ("pmstore.server", "EmbeddedServer"),
    "MarketRecord": ("pmstore.models", "MarketRecord"),
    "OrderbookBatch": ("pmstore.batches", "OrderbookBatch"),
    "OrderbookSnapshot": ("pmstore.models", "OrderbookSnapshot"),
    "PriceBatch": ("pmstore.batches", "PriceBatch"),
    "PriceSnapshot": ("pmstore.models", "PriceSnapshot"),
    "Reader": ("pmstore.reader", "Reader"),
    "ResolutionRecord": ("pmstore.models", "ResolutionRecord"),
    "TradeBatch": ("pmstore.batches", "TradeBatch"),
    "TradeRecord": ("pmstore.models", "TradeRecord"),
    "WriteResult": ("pmstore.writer", "WriteResult"),
    "Writer": ("pmstore.writer", "Writer"),
    "migrate": ("pmstore.migrations", "apply"),
    "record_to_model": ("pmstore.models", "record_to_model"),
}
"""Public names imported on first use: name -> (module, attribute)."""


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (``from pmstore import Writer`` too)."""
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pmstore' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
