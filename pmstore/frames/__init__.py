"""DataFrames out of pmstore: pyarrow, polars and pandas (optional extras).

- ``copy_decoding``: PostgreSQL binary ``COPY ... TO`` bytes -> a pyarrow Table
  (a pure function, shared by the sync and async readers);
- ``outbound``: the Reader's queries fetched as ``COPY (SELECT ...) TO STDOUT``
  and returned as a pyarrow Table, a polars or a pandas DataFrame.

DataFrames in are one more input form of a batch: ``pmstore.batches``
(``ColumnBatch.from_frame``). Importing this package imports none of pandas,
polars or pyarrow: each is imported when first needed (``pmstore._optional``),
and a missing one raises ConfigurationError naming the extra to install.
"""
