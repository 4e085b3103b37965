"""The recorder's Prometheus metrics, read from its counters when scraped.

One ``CollectorRegistry`` per recorder (no global state): the counters and
gauges are taken from ``RecorderStats`` at scrape time (nothing in the
frame path), and the commit latency is a histogram observed per commit.
``serve`` exposes the registry on ``--metrics-port`` (prometheus-client's
own HTTP server, in a thread).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from pmstore.recorder._recorder import RecorderStats

__all__ = ["RecorderMetrics"]

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class _StatsCollector(Collector):
    def __init__(self, stats: Callable[[], RecorderStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        p = "pmstore_recorder_"
        counters: tuple[tuple[str, str, float], ...] = (
            ("frames", "WebSocket frames received", s.frames),
            ("frame_bytes", "bytes of WebSocket frames received", s.bytes),
            ("records", "records appended to the archive", s.records),
            ("reconnects", "sockets rebuilt after a close, error or silence", s.reconnects),
            ("silences", "sockets rebuilt for data silence", s.silences),
            ("connect_failures", "socket connects that failed (e.g. HTTP 429)",
             s.connect_failures),
            ("reseed_books", "books received from POST /books reseeds", s.reseed_books),
            ("rest_failures", "REST calls that failed", s.rest_failures),
            ("db_failures", "database writes that failed (retried)", s.db_failures),
            ("batches_dropped", "live batches left to catch-up from the archive",
             s.batches_dropped),
            ("committed_records", "archive records committed to the database",
             s.committed_records),
            ("archive_files_closed", "archive files closed", s.files_closed),
            ("archive_bytes", "compressed bytes written to the archive", s.archive_bytes),
        )  # fmt: skip
        for name, doc, value in counters:
            c = CounterMetricFamily(p + name, doc)
            c.add_metric([], float(value))
            yield c
        gauges: tuple[tuple[str, str, float], ...] = (
            ("tokens", "tokens subscribed", s.tokens),
            ("sockets", "sockets (shards)", s.sockets),
            ("sockets_connected", "sockets connected and subscribed", s.sockets_connected),
            ("open_gaps", "tokens whose feed gap is open", s.open_gaps),
            ("valid_books", "tokens with a valid book", s.valid_books),
            ("db_lag_records", "archive records not yet committed to the database", s.db_lag),
            ("db_up", "1 while database writes succeed", 1.0 if s.db_ok else 0.0),
        )
        for name, doc, value in gauges:
            g = GaugeMetricFamily(p + name, doc)
            g.add_metric([], float(value))
            yield g
        age = GaugeMetricFamily(
            p + "last_frame_age_seconds",
            "seconds since the socket's last data frame (since it started when none yet)",
            labels=["socket"],
        )
        for socket, seconds in s.last_frame_age.items():
            age.add_metric([str(socket)], seconds)
        yield age


class RecorderMetrics:
    """The registry of one recorder: its stats collector and the commit latency histogram."""

    def __init__(self, stats: Callable[[], RecorderStats]) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats))
        self.commit_latency = Histogram(
            "pmstore_recorder_commit_latency_seconds",
            "from a frame's receipt to the commit of its rows (oldest frame of each batch)",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server: object | None = None
        self._thread: threading.Thread | None = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` on ``port`` (0: any free port); the port bound."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)
        self._server, self._thread = server, thread
        return int(server.server_port)

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()  # type: ignore[attr-defined]
            server.server_close()  # type: ignore[attr-defined]
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
