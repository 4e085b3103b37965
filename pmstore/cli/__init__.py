"""The ``pmstore`` command line (also ``python -m pmstore``).

    pmstore db start|stop|status|url   the embedded local TimescaleDB
    pmstore migrate [--status] [--rollback N | --rollback-all] [--break-lock] [--allow-drift]
    pmstore demo [--seconds S] [--markets N] [--rate R] [--fault freeze|drop|none]
                 [--snapshot-every S] [--archive DIR] [--minutes N] [--tokens N]
                 [--retry-for SECONDS]
                                       the main job: the live recorder against the simulator,
                                       then a short synthetic history, with a report
    pmstore status                     the server, the schema, the recorder's health, open gaps
    pmstore ingest PATH... [--rejects FILE] [--jobs N] [--beyond-retention MODE]
                       [--retry-for SECONDS]
    pmstore refresh [--start T] [--end T] [--pending]
    pmstore export TABLE --start T --end T --out DIR
    pmstore coverage [TOKEN...] --start T --end T [--step SECONDS]
                                       gaps in the price snapshots, and the feed gaps
    pmstore record [--archive DIR] [--token ID... | --max-tokens N ...]
                                       the live recorder, until SIGINT/SIGTERM
    pmstore simulate [--port P]        a Polymarket simulator (Gamma, CLOB, market channel)
    pmstore --version

One module per command (``db``, ``migrate``, ``status``, ``demo``,
``ingest``, ``refresh``, ``export``, ``coverage``, ``record``, ``simulate``), each with
``add_parser`` and ``run``, and the only place anything is printed or drawn;
``_target`` picks the server they work on, ``_times`` parses
``--start``/``--end``, ``_writing`` adds the options of the commands that
write (``--retry-for``), ``_render`` draws progress bars, sizes, durations and times,
``_parser`` builds the argument parser and runs ``main``.

Every command uses the server named by ``--dsn``, else ``PMSTORE_DSN``, else
the standard libpq variables (PGHOST, ...), else the embedded server (started
when needed, its data under ``PMSTORE_HOME``). Failures print one line
(``pmstore: error: ...``) and exit non-zero; ``--verbose`` adds the traceback.
Passwords are never printed.
"""

from pmstore.cli._parser import build_parser, main

__all__ = ["build_parser", "main"]
