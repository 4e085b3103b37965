"""The Writer's internals, in the order a batch flows through them.

- ``plan``             a call's checked batch, its id and its statements (no I/O):
                       ``CopyPlan``, ``WriteResult``, the upsert SQL
- ``precedence``       which of two records of one resolution wins (the upsert's
                       guard, and ``pmstore ingest``'s choice within a batch)
- ``retention``        the retention horizon a batch is checked against
- ``touched``          the UTC hours a batch touched, queued for the aggregates' refresh
- ``pipeline``         ``CopyStream``: a batch -> byte-bounded COPY chunks, validated,
                       hashed and encoded by a worker thread ahead of the sender
- ``encoding``         a batch's rows -> binary COPY fields (numpy)
- ``engines``          fields -> COPY tuples (the three layouts)
- ``connection_base``  what the connection layer shares with the planner: the
                       errors it raises (``write_failure``, ``AlreadyLoggedError``)
- ``retry``            ``RetryBudget``: how long a lost or read-only connection is retried
                       (the defaults: 60 s, waits from 0.5 s doubling to 5 s, jittered)
- ``connection_async`` the owned or given connection and its retried transactions
                       (``connection`` is generated from it)

The public faces are ``pmstore.writer_async.AsyncWriter`` and
``pmstore.writer.Writer``; nothing here is imported by ``import pmstore``.
"""
