"""The options every command that writes through a Writer takes (``ingest``, ``demo``).

``--retry-for SECONDS``: the Writer's retry budget (``pmstore._write.retry``),
so that a command rides out a failover of the given length.
"""

from __future__ import annotations

import argparse

from pmstore._write.retry import DEFAULT_RETRY_FOR

__all__ = ["add_write_options"]


def _seconds(text: str) -> float:
    """A non-negative, finite number of seconds (argparse's type for ``--retry-for``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be >= 0 and finite, not {text}")
    return value


def add_write_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--retry-for`` (``args.retry_for``, seconds) to a command's parser."""
    parser.add_argument(
        "--retry-for",
        type=_seconds,
        default=DEFAULT_RETRY_FOR,
        metavar="SECONDS",
        help="after a lost connection or a read-only server (a failover), keep reconnecting "
        "and retrying the batch this long before giving up; 0: never retry "
        "(default %(default)g, enough for a ~30 s failover)",
    )
