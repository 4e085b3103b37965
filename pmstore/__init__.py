"""pmstore: the storage layer of a Polymarket data-collection pipeline on TimescaleDB.

    from pmstore import Writer, migrate
    migrate(dsn)                          # the schema (yoyo migrations)
    with Writer(dsn) as w:
        w.copy_prices({"ts": ts, "token_id": tokens, "price": prices})

Modules, one per responsibility:

- ``pmstore.models``        pydantic records of the five tables
- ``pmstore.batches``       columnar batches and their vectorized validation
- ``pmstore.copy_encoding`` binary COPY encoding (numpy)
- ``pmstore.writer_async``  AsyncWriter: COPY and upserts, all or nothing, never twice
- ``pmstore.writer``        Writer, generated from it (scripts/async_to_sync.py)
- ``pmstore.write_plan``    what a write is before the server: checked batch, id, SQL
- ``pmstore.reader_async``  AsyncReader: typed queries
- ``pmstore.reader``        Reader, generated from it
- ``pmstore.read_queries``  the readers' SQL, result models and argument checks
- ``pmstore.async_twins``   the few calls whose async and sync forms differ
- ``pmstore.migrations``    apply / roll back / inspect the schema
- ``pmstore.edition``       server versions, TimescaleDB edition and features
- ``pmstore.server``        EmbeddedServer: a local TimescaleDB pmstore starts itself
- ``pmstore.polymarket``    Polymarket API payloads -> records
- ``pmstore.ingest``        files of payloads -> the Writer (``pmstore ingest``)
- ``pmstore.synthetic``     realistic synthetic market data (demo, benchmarks)
- ``pmstore.demo``          ``pmstore demo``: the main job on synthetic data
- ``pmstore.status``        ``pmstore status``: the state of a deployment
- ``pmstore.dsn``           connection strings: sources, redaction, yoyo URLs
- ``pmstore.cli``           the ``pmstore`` command line
- ``pmstore.errors``        the error hierarchy
"""

from typing import TYPE_CHECKING, Any

from pmstore.batches import OrderbookBatch, PriceBatch, TradeBatch
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
from pmstore.migrations import apply as migrate
from pmstore.models import (
    MarketRecord,
    OrderbookSnapshot,
    PriceSnapshot,
    ResolutionRecord,
    TradeRecord,
    record_to_model,
)
from pmstore.server import EmbeddedServer
from pmstore.writer import Writer, WriteResult

if TYPE_CHECKING:
    from pmstore.reader_async import AsyncReader
    from pmstore.writer_async import AsyncWriter

__version__ = "0.1.0"

_LAZY = {"AsyncReader": "pmstore.reader_async", "AsyncWriter": "pmstore.writer_async"}
"""Names imported on first use, so that ``import pmstore`` stays cheap."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pmstore' has no attribute {name!r}")


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
