"""The Reader's internals.

- ``queries``  the Reader's SQL, its argument checks and its result models
               (``Candle``, ``PricePoint``, ``TradeVolume``)
- ``coverage`` gaps in the price snapshots (``Reader.coverage``, ``pmstore coverage``)

The public faces are ``pmstore.reader_async.AsyncReader`` and ``pmstore.reader.Reader``,
which export the result models too.
"""
