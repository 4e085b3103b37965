"""A local S3-compatible server for the tests, and a TCP relay that cuts it off on cue.

``MotoS3`` runs moto's server (``python -m moto.server``, from PyPI's ``moto[server]``)
in its own process on a port it picks itself; the port is read from its first log
lines, so nothing waits on a timer. A separate process, not moto's in-process
``ThreadedMotoServer``: pyarrow calls S3 from C++ threads and sometimes holds the GIL
(a stream's destructor does), which an in-process server needs to answer.

``CutRelay`` sits between a client and the server: it relays bytes both ways until
``cut_after(n)`` is armed and n more bytes went from clients to the server, then it
closes every connection and refuses new ones, in the middle of whatever request was
being sent, until ``restore()``. The fault comes from the test, not from pmstore.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

__all__ = ["CutRelay", "MotoS3", "moto_s3"]


class MotoS3:
    """moto's S3 server on 127.0.0.1, in a child process; ``endpoint`` is its URL."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = 0
        seen: list[str] = []
        for line in self.process.stdout:
            seen.append(line)
            found = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
            if found:
                self.port = int(found.group(1))
                break
        if not self.port:
            self.process.wait()
            raise RuntimeError(f"moto's server did not start: {''.join(seen)}")
        # Its request log must be read, or the pipe fills and the server stops.
        self.log: list[str] = seen
        threading.Thread(target=self._drain, daemon=True).start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def _drain(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def stop(self) -> None:
        """End the server process."""
        self.process.terminate()
        self.process.wait()


@contextmanager
def moto_s3() -> Iterator[MotoS3]:
    """A running ``MotoS3``, stopped on exit."""
    server = MotoS3()
    try:
        yield server
    finally:
        server.stop()


class CutRelay:
    """Relays 127.0.0.1:``port`` to ``target_port``; see the module notes."""

    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._budget: int | None = None
        self._refusing = False
        self.cut = threading.Event()
        """Set once the relay cut the connections."""
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_after(self, n: int) -> None:
        """Cut every connection once ``n`` more bytes went from clients to the server."""
        with self._lock:
            self._budget = n

    def restore(self) -> None:
        """Relay again (new connections only)."""
        with self._lock:
            self._budget = None
            self._refusing = False
            self.cut.clear()

    def close(self) -> None:
        """Stop listening and close every connection."""
        with self._lock:
            self._refusing = True
            self._cut_all()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._refusing:
                    client.close()
                    continue
                server = socket.create_connection(self._target)
                self._sockets += [client, server]
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                with suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                return
            if upstream:
                with self._lock:
                    if self._budget is not None:
                        if len(data) >= self._budget:
                            data = data[: self._budget]
                            with suppress(OSError):
                                sink.sendall(data)
                            self._refusing = True
                            self._cut_all()
                            self.cut.set()
                            return
                        self._budget -= len(data)
            try:
                sink.sendall(data)
            except OSError:
                return

    def _cut_all(self) -> None:
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with suppress(OSError):
                sock.close()
        self._sockets.clear()
