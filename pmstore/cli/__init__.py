"""The ``pmstore`` command line (also ``python -m pmstore``).

    pmstore db start|stop|status|url   the embedded local TimescaleDB
    pmstore migrate [--status] [--rollback N | --rollback-all] [--break-lock] [--allow-drift]
    pmstore demo [--minutes N] [--tokens N]
    pmstore status
    pmstore ingest PATH... [--rejects FILE] [--jobs N] [--beyond-retention MODE]
    pmstore refresh [--start T] [--end T] [--pending]
    pmstore export TABLE --start T --end T --out DIR
    pmstore coverage [TOKEN...] --start T --end T [--step SECONDS]
    pmstore --version

One module per command (``db``, ``migrate``, ``status``, ``demo``,
``ingest``, ``refresh``, ``export``, ``coverage``), each with ``add_parser``
and ``run``; ``target`` picks the server they work on, ``times`` parses
``--start``/``--end``, ``parser`` builds the argument parser and runs ``main``.

Every command uses the server named by ``--dsn``, else ``PMSTORE_DSN``, else
the standard libpq variables (PGHOST, ...), else the embedded server (started
when needed, its data under ``PMSTORE_HOME``). Failures print one line
(``pmstore: error: ...``) and exit non-zero; ``--verbose`` adds the traceback.
Passwords are never printed.
"""

from pmstore.cli._parser import build_parser, main

__all__ = ["build_parser", "main"]
