"""``pmstore simulate --port P``: a Polymarket simulator to record from, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal

from pmstore.errors import ConfigurationError

__all__ = ["add_parser", "run"]


def _connect_limit(text: str) -> tuple[int, float]:
    count, sep, seconds = text.partition("/")
    try:
        if not sep:
            raise ValueError(text)
        return int(count), float(seconds)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected COUNT/SECONDS (e.g. 15/5), not {text!r}"
        ) from None


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """Add ``simulate`` to the subcommands."""
    p = sub.add_parser(
        "simulate",
        parents=[common],
        help="serve a simulated Polymarket (Gamma, CLOB books, market channel)",
        description="Serve Gamma keyset discovery, CLOB POST /books and the market-channel "
        "WebSocket on one port, with Polymarket's payload shapes and protocol rules, "
        "until SIGINT or SIGTERM. Prints the --gamma-url/--clob-url/--ws-url to give "
        "`pmstore record`. See docs/simulator.md.",
    )
    p.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--markets", type=int, default=100, help="open markets (default 100)")
    p.add_argument(
        "--closed-markets", type=int, default=0, help="already resolved markets (default 0)"
    )
    p.add_argument(
        "--rate",
        type=float,
        default=50.0,
        help="random events per second over all open markets (default 50; 0: none)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--bookable-delay",
        type=float,
        default=0.0,
        help="seconds between a new market's listing and its books opening (default 0)",
    )
    p.add_argument(
        "--keepalive-timeout",
        type=float,
        default=15.0,
        help="close a socket that sends no PING for this many seconds (default 15)",
    )
    p.add_argument(
        "--books-per-frame",
        type=int,
        default=50,
        help="books per JSON array in subscription snapshots (default 50; 1: single objects)",
    )
    p.add_argument(
        "--no-snapshot-on-subscribe",
        action="store_true",
        help="send no book for assets added by an operation frame",
    )
    faults = p.add_argument_group("faults")
    faults.add_argument(
        "--max-assets-per-socket",
        type=int,
        help="a socket with more assets gets no snapshot and no data (Polymarket: ~500)",
    )
    faults.add_argument(
        "--reject-handshakes", type=int, default=0, help="the first N handshakes get HTTP 429"
    )
    faults.add_argument(
        "--connect-limit",
        type=_connect_limit,
        metavar="COUNT/SECONDS",
        help="handshakes beyond COUNT per SECONDS get HTTP 429",
    )
    faults.add_argument(
        "--drop-market-resolved", action="store_true", help="never send market_resolved"
    )
    faults.add_argument(
        "--duplicate-rate", type=float, default=0.0, help="probability a data frame is sent twice"
    )
    faults.add_argument(
        "--empty-books", type=float, default=0.0, help="share of markets starting with empty books"
    )
    faults.add_argument(
        "--tick-size-change-rate",
        type=float,
        default=0.0,
        help="probability a random event is a tick-size change",
    )
    faults.add_argument(
        "--legacy-price-change",
        action="store_true",
        help="price_change in its pre-2025-09-15 shape (changes[], no best bid/ask)",
    )
    chaos = p.add_argument_group("faults on a timer (seconds)")
    chaos.add_argument(
        "--freeze-every", type=float, help="silence one socket for good (PONG goes on)"
    )
    chaos.add_argument("--drop-every", type=float, help="drop one socket without a close frame")
    chaos.add_argument("--maintenance-every", type=float, help="a maintenance silence")
    chaos.add_argument(
        "--maintenance-seconds",
        type=float,
        default=90.0,
        help="length of a maintenance silence (default 90)",
    )
    chaos.add_argument("--new-market-every", type=float, help="list a new market")
    chaos.add_argument("--resolve-every", type=float, help="resolve an open market")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; print the URLs, then a summary. Exit code 0."""
    from pmstore.simulator import Chaos, Faults, SimulatorConfig

    if args.books_per_frame < 1:
        raise ConfigurationError("--books-per-frame must be >= 1")
    config = SimulatorConfig(
        markets=args.markets,
        closed_markets=args.closed_markets,
        seed=args.seed,
        host=args.host,
        port=args.port,
        empty_book_fraction=args.empty_books,
        keepalive_timeout=args.keepalive_timeout if args.keepalive_timeout > 0 else None,
        snapshot_on_subscribe=not args.no_snapshot_on_subscribe,
        books_per_frame=args.books_per_frame,
        bookable_delay=args.bookable_delay,
        record_frames=False,
        rate=args.rate,
        faults=Faults(
            max_assets_per_socket=args.max_assets_per_socket,
            reject_handshakes=args.reject_handshakes,
            connect_limit=args.connect_limit,
            drop_market_resolved=args.drop_market_resolved,
            duplicate_rate=args.duplicate_rate,
            tick_size_change_rate=args.tick_size_change_rate,
            legacy_price_change=args.legacy_price_change,
        ),
        chaos=Chaos(
            freeze_every=args.freeze_every,
            drop_every=args.drop_every,
            maintenance_every=args.maintenance_every,
            maintenance_seconds=args.maintenance_seconds,
            new_market_every=args.new_market_every,
            resolve_every=args.resolve_every,
        ),
    )
    return asyncio.run(_serve(config))


async def _serve(config: object) -> int:
    from pmstore.simulator import Simulator, SimulatorConfig

    assert isinstance(config, SimulatorConfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with Simulator(config) as sim:
        info = sim.describe()
        print(
            f"pmstore simulate: {info['markets']} markets ({info['tokens']} tokens), "
            f"{info['closed_markets']} closed, seed {config.seed}, {config.rate:g} events/s, "
            f"on {config.host}:{sim.port}; SIGINT/SIGTERM stops",
            flush=True,
        )
        print(
            f"record from it: pmstore record --gamma-url {sim.gamma_url} "
            f"--clob-url {sim.clob_url} --ws-url {sim.ws_url}",
            flush=True,
        )
        await stop.wait()
        connections = sim.connections
        frames = sum(conn.frames_sent for conn in connections)
        requests = len(sim.requests)
    print(
        f"pmstore simulate: stopped after {len(connections)} connection(s), {frames} frames "
        f"sent, {requests} REST request(s)",
        flush=True,
    )
    return 0
