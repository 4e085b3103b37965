"""The Reader's internals.

- ``queries``  the Reader's SQL, its argument checks and its result models
               (``Candle``, ``PricePoint``, ``TradeVolume``)
- ``bulk``     a query's rows as Arrow record batches, from binary COPY read in bulk
               through libpq and decoded beside the reading (``as_=`` reads, export)
- ``panel``    price history, candles and trade volume of one token, several or all
               over a range: the queries, their declared columns, running them
- ``coverage`` gaps in the price snapshots (``Reader.coverage``, ``pmstore coverage``)

The public faces are ``pmstore.reader_async.AsyncReader`` and ``pmstore.reader.Reader``,
which export the result models too.
"""
