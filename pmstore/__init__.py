"""pmstore: the storage layer of a Polymarket data-collection pipeline on TimescaleDB.

    from pmstore import Writer, migrate
    migrate(dsn)                          # the schema (yoyo migrations)
    with Writer(dsn) as w:
        w.copy_prices({"ts": ts, "token_id": tokens, "price": prices})

The public modules (an underscore marks an internal module, as in psycopg):

- ``pmstore.models``        pydantic records of the five tables
- ``pmstore.batches``       columnar batches and their vectorized validation (any input form,
                            DataFrames included)
- ``pmstore.writer_async``  AsyncWriter, the source of ``pmstore.writer`` (Writer, generated)
- ``pmstore.reader_async``  AsyncReader, the source of ``pmstore.reader`` (Reader, generated)
- ``pmstore.frames``        DataFrames out (pyarrow, polars, pandas; optional extras)
- ``pmstore.migrations``    apply / roll back / inspect the schema, drift
- ``pmstore.edition``       server versions, TimescaleDB edition and features
- ``pmstore.refresh``       continuous aggregates under late data (``pmstore refresh``)
- ``pmstore.export``        Parquet export per UTC day (``pmstore export``), to a folder
                            or object storage (``_export_target``: where files go)
- ``pmstore.status``        the state of a deployment (``pmstore status``)
- ``pmstore.demo``          the main job, the live recorder against the simulator, as a
                            report (``pmstore demo``)
- ``pmstore.polymarket``    Polymarket API payloads -> records (one module per source)
- ``pmstore.ingest``        recorded files of payloads -> the Writer (``pmstore ingest``)
- ``pmstore.server``        EmbeddedServer: a local TimescaleDB pmstore starts itself
- ``pmstore.synthetic``     realistic synthetic market data (demo, benchmarks, tests)
- ``pmstore.dsn``           connection strings: sources, redaction, yoyo URLs
- ``pmstore.errors``        the one error hierarchy
- ``pmstore.cli``           the ``pmstore`` command line: one module per command, and the
                            only place anything is printed

The write path, top-down: ``Writer.copy_prices`` (``writer_async``) ->
``_write/plan`` (the checked batch, its id and statements) -> ``_write/retention`` and
``_write/touched`` -> ``_write/pipeline`` (a worker thread encodes ahead) ->
``_write/encoding`` (order-book sides: ``_write/jsonb_levels``) -> ``_write/engines``
(COPY tuples, in the wire format of ``_pgcopy``) -> ``_write/connection_async``
(one transaction, retried after a drop). The read path: ``Reader``
(``reader_async``) -> ``_read/queries`` (SQL and result models), ``_read/panel``
(one token, several or all; ``_read/parallel``: several tokens on several
connections in one snapshot) -> ``_read/bulk`` (binary COPY read in bulk through
libpq, by the compiled loop of ``_copydata`` where built (``_read/libpq``), decoded
by ``frames``), and ``_read/coverage`` -> ``_read/gaps``.
Shared internals: ``_twins`` (the sync/async pairs the generator maps),
``_utc`` (the aware-UTC rule, hours and days), ``_optional`` (the gateway to
the optional libraries), ``_copydata`` (C, optional: the bulk reads' message loop
and row walk, coverage's gap search).

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
    CopyDecodeError,
    FeatureUnavailableError,
    IngestError,
    MigrationDriftError,
    MigrationError,
    MigrationLockError,
    PayloadError,
    PmstoreError,
    ReadError,
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
    "CopyDecodeError",
    "EmbeddedServer",
    "FeatureUnavailableError",
    "IngestError",
    "MarketRecord",
    "MigrationDriftError",
    "MigrationError",
    "MigrationLockError",
    "OrderbookBatch",
    "OrderbookSnapshot",
    "PayloadError",
    "PmstoreError",
    "PriceBatch",
    "PriceSnapshot",
    "ReadError",
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
