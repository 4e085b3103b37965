"""``pmstore record``: record Polymarket's market channel live until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from pmstore import migrations
from pmstore.cli._target import resolve
from pmstore.errors import ConfigurationError

__all__ = ["add_parser", "run"]

_ENV = {
    "gamma_url": "PMSTORE_GAMMA_URL",
    "clob_url": "PMSTORE_CLOB_URL",
    "ws_url": "PMSTORE_WS_URL",
}


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``record`` to the subcommands."""
    from pmstore.recorder._recorder import CLOB_URL, GAMMA_URL, MAX_SHARD, WS_URL

    p = sub.add_parser(
        "record",
        parents=[common],
        help="record the live market channel (archive first, then the database)",
        description="Subscribe to Polymarket's market channel (Gamma discovery or fixed "
        "tokens), append every frame verbatim to a gzip archive, derive prices, order "
        "books, trades, markets, resolutions and feed gaps from it and write them exactly "
        "once, until SIGINT or SIGTERM (exit 0 after a clean stop). See docs/recorder.md.",
    )
    p.add_argument(
        "--archive", metavar="DIR", default="pmstore-archive",
        help="archive directory (default ./pmstore-archive)",
    )  # fmt: skip
    urls = p.add_argument_group(
        "endpoints (also PMSTORE_GAMMA_URL, PMSTORE_CLOB_URL, PMSTORE_WS_URL)"
    )
    urls.add_argument("--gamma-url", help=f"Gamma base URL (default {GAMMA_URL})")
    urls.add_argument("--clob-url", help=f"CLOB base URL (default {CLOB_URL})")
    urls.add_argument("--ws-url", help=f"market channel URL (default {WS_URL})")
    what = p.add_argument_group("what to record")
    what.add_argument(
        "--token", action="append", default=[], metavar="ID",
        help="record this token (repeatable); no discovery then",
    )  # fmt: skip
    what.add_argument("--max-tokens", type=int, help="at most this many tokens (discovery)")
    what.add_argument(
        "--slug", action="append", default=[], metavar="SLUG",
        help="only markets with this slug (repeatable; Gamma's slug filter)",
    )  # fmt: skip
    what.add_argument("--tag-id", help="only markets of this Gamma tag id")
    what.add_argument(
        "--discovery-every", type=float, default=60.0,
        help="seconds between Gamma polls for new and closed markets (default 60)",
    )  # fmt: skip
    what.add_argument(
        "--drop-grace", type=float, default=600.0,
        help="seconds a closed market's tokens stay subscribed (default 600)",
    )  # fmt: skip
    conn = p.add_argument_group("connections")
    conn.add_argument(
        "--shard-size", type=int, default=200,
        help=f"assets per socket (default 200, at most {MAX_SHARD})",
    )  # fmt: skip
    conn.add_argument(
        "--silence-timeout", type=float, default=60.0,
        help="rebuild a socket without a data frame for this many seconds (default 60)",
    )  # fmt: skip
    conn.add_argument(
        "--reseed-after", type=float, default=10.0,
        help="seconds an invalid book waits for a fresh book before POST /books (default 10)",
    )  # fmt: skip
    rows = p.add_argument_group("rows")
    rows.add_argument(
        "--snapshot-every", type=float, default=60.0,
        help="seconds between order-book snapshots of every valid book (default 60)",
    )  # fmt: skip
    rows.add_argument(
        "--price-every", type=float, default=60.0,
        help="seconds between price snapshots of every valid book (default 60)",
    )  # fmt: skip
    rows.add_argument(
        "--no-snapshot-after", type=float, default=30.0,
        help="a subscribed token without a book this long gets a no_snapshot gap (default 30)",
    )  # fmt: skip
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--commit-every", type=float, default=1.0,
        help="seconds between archive flushes and database commits (default 1)",
    )  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no status line")
    p.set_defaults(func=run)


def _url(args: argparse.Namespace, name: str, default: str) -> str:
    given: str | None = getattr(args, name)
    return given or os.environ.get(_ENV[name]) or default


def run(args: argparse.Namespace) -> int:
    """Migrate, then record until SIGINT/SIGTERM; 0 after a clean stop, 1 after a failure."""
    from pmstore.recorder import RecorderConfig
    from pmstore.recorder._recorder import CLOB_URL, GAMMA_URL, WS_URL

    config = RecorderConfig(
        archive_dir=Path(args.archive),
        dsn="",
        gamma_url=_url(args, "gamma_url", GAMMA_URL),
        clob_url=_url(args, "clob_url", CLOB_URL),
        ws_url=_url(args, "ws_url", WS_URL),
        tokens=tuple(args.token),
        max_tokens=args.max_tokens,
        slugs=tuple(args.slug),
        tag_id=args.tag_id,
        shard_size=args.shard_size,
        silence_timeout=args.silence_timeout,
        snapshot_every=args.snapshot_every,
        price_every=args.price_every,
        no_snapshot_after=args.no_snapshot_after,
        reseed_after=args.reseed_after,
        discovery_every=args.discovery_every,
        drop_grace=args.drop_grace,
        commit_every=args.commit_every,
        metrics_port=args.metrics_port,
    )
    config.check()  # before starting a server
    target = resolve(args)
    for warning in migrations.apply(target.dsn).warnings:
        print(f"pmstore: {warning}", file=sys.stderr)
    from dataclasses import replace

    config = replace(config, dsn=target.dsn)
    if not args.verbose:
        logging.getLogger("pmstore.recorder").setLevel(logging.INFO)
    return asyncio.run(_record(config, target.where, not args.no_progress and sys.stderr.isatty()))


async def _record(config: object, where: str, progress: bool) -> int:
    from pmstore.recorder import Recorder, RecorderConfig

    assert isinstance(config, RecorderConfig)
    recorder = Recorder(config)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await recorder.start()
    print(
        f"pmstore: recording into {config.archive_dir} and {where}"
        + (f", metrics on :{recorder.metrics_port}" if recorder.metrics_port else ""),
        file=sys.stderr,
    )
    status = asyncio.create_task(_status(recorder)) if progress else None
    waiting = asyncio.create_task(recorder.wait())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait((waiting, stopping), return_when=asyncio.FIRST_COMPLETED)
    if status is not None:
        status.cancel()
        print(file=sys.stderr)
    await recorder.stop()
    stopping.cancel()
    try:
        await waiting
    except ConfigurationError:
        raise
    s = recorder.stats
    print(
        f"pmstore: stopped: {s.frames:,} frames, {s.records:,} records archived, "
        f"{s.committed_records:,} committed, {s.db_lag:,} left for the next run; "
        f"rows written: " + ", ".join(f"{t} {n:,}" for t, n in s.rows_written.items()),
        file=sys.stderr,
    )
    return 0


async def _status(recorder: object) -> None:
    from pmstore.recorder import Recorder

    assert isinstance(recorder, Recorder)
    while True:
        s = recorder.stats
        line = (
            f"\r{s.tokens} tokens, {s.sockets_connected}/{s.sockets} sockets, "
            f"{s.frames:,} frames, {s.valid_books} valid books, {s.open_gaps} open gaps, "
            f"db lag {s.db_lag:,} records{'' if s.db_ok else ' (database down)'}   "
        )
        print(line, end="", file=sys.stderr, flush=True)
        await asyncio.sleep(1.0)
