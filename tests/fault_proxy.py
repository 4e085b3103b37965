"""A TCP proxy in front of PostgreSQL that injects faults from the tests, not from pmstore.

Like psycopg's ``tests/fix_proxy.py``: the client under test connects to
``PgProxy.dsn(...)`` (this proxy, SSL off so the protocol is readable), and the
proxy relays every byte to the real server while reading the protocol's framing:

- client -> server: the startup message (its ``application_name``), then raw bytes;
- server -> client: whole messages; a ``CommandComplete`` of ``COMMIT`` ends a
  transaction, which "wrote" when a ``COPY``/``INSERT``/``UPDATE`` in it
  reported rows.

``kill_after_writes(n, application_name)`` arms it: when the server has
committed the n-th writing transaction of a connection with that
``application_name``, the proxy sends SIGKILL to the victim process
(``victim(pid)``) before the client hears of the commit, the moment where the
outcome is unknown to the client. The proxy waits for ``victim`` to be named
before it kills, so nothing depends on timing.

For failovers (tests/test_failover.py), two more faults, both driven by the test:

- ``hold_connection(n)``: the n-th connection accepted from now waits in the
  proxy, not yet relayed (``held`` is set), until ``release()``: the test acts
  (e.g. promotes a standby) while a client's connection attempt is in flight;
  ``accepted`` counts the connections accepted since;
- ``pause()`` / ``resume()``: stop / restart relaying the server's bytes to
  every client (a streaming replica behind the proxy then receives no WAL).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import psycopg.conninfo

__all__ = ["PgProxy", "pg_proxy"]

_WRITES = (b"COPY", b"INSERT", b"UPDATE", b"DELETE")


class PgProxy:
    """Relays connections to ``host:port``; see the module notes."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._victim: int | None = None
        self._victim_named = threading.Event()
        self._armed: tuple[int, str] | None = None
        self._writes = 0
        self.killed = threading.Event()
        """Set once the victim was killed."""
        self.accepted = 0
        """Connections accepted since the proxy started, or since ``hold_connection``."""
        self._hold_at: int | None = None
        self.held = threading.Event()
        """Set when the connection ``hold_connection`` named arrived and waits."""
        self._released = threading.Event()
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = False
        self._sockets: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def dsn(self, dsn: str) -> str:
        """``dsn`` through this proxy (SSL and GSS encryption off: the bytes stay readable)."""
        params = psycopg.conninfo.conninfo_to_dict(dsn)
        if not params.get("password"):  # the passfile has no line for this proxy's port
            with psycopg.connect(dsn) as conn:
                params["password"] = conn.info.password
        params.update(
            host="127.0.0.1", hostaddr="127.0.0.1", port=str(self.port), sslmode="disable"
        )
        params["gssencmode"] = "disable"
        return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]

    def kill_after_writes(self, n: int, application_name: str) -> None:
        """SIGKILL the victim when the n-th writing transaction of such connections commits."""
        with self._lock:
            self._armed, self._writes = (n, application_name), 0

    def hold_connection(self, n: int) -> None:
        """Hold the n-th connection accepted from now until ``release()`` (count restarts)."""
        with self._lock:
            self.accepted, self._hold_at = 0, n
            self.held.clear()
            self._released.clear()

    def release(self) -> None:
        """Let the held connection through to the server."""
        self._released.set()

    def pause(self) -> None:
        """Stop relaying the server's bytes to the clients (received bytes wait in the proxy)."""
        self._flowing.clear()

    def resume(self) -> None:
        """Relay the server's bytes again, those that waited first."""
        self._flowing.set()

    def victim(self, pid: int) -> None:
        """The process to kill."""
        self._victim = pid
        self._victim_named.set()

    def close(self) -> None:
        """Stop accepting and close every relayed connection."""
        self._closing = True
        self._released.set()
        self._flowing.set()
        _close(self._listener)  # shutdown wakes the accepting thread (close alone does not)
        for sock in list(self._sockets):
            _close(sock)
        self._thread.join(timeout=10)

    # -- relaying ---------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
                hold = self.accepted == self._hold_at
            if hold:
                self.held.set()
                self._released.wait()
                if self._closing:
                    _close(client)
                    return
            try:
                server = _connect(self._target)
            except OSError:
                _close(client)
                continue
            self._sockets += [client, server]
            state = _Connection()
            threading.Thread(
                target=self._client_to_server, args=(client, server, state), daemon=True
            ).start()
            threading.Thread(
                target=self._server_to_client, args=(server, client, state), daemon=True
            ).start()

    def _client_to_server(
        self, client: socket.socket, server: socket.socket, state: _Connection
    ) -> None:
        try:
            head = _read_exactly(client, 4)
            (length,) = struct.unpack(">i", head)
            body = _read_exactly(client, length - 4)
            state.application_name = _startup_parameter(body, "application_name")
            server.sendall(head + body)
            while data := client.recv(1 << 16):
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)
            _close(client)

    def _server_to_client(
        self, server: socket.socket, client: socket.socket, state: _Connection
    ) -> None:
        buffer = b""
        try:
            while data := server.recv(1 << 16):
                self._flowing.wait()  # after the bytes came: a pause holds back all that follows
                buffer += data
                out = bytearray()
                while len(buffer) >= 5:
                    (length,) = struct.unpack_from(">i", buffer, 1)
                    if len(buffer) < 1 + length:
                        break
                    message, buffer = buffer[: 1 + length], buffer[1 + length :]
                    if message[:1] == b"C" and self._completes(state, message[5:].rstrip(b"\0")):
                        client.sendall(out)
                        self._kill()
                        return
                    out += message
                client.sendall(out)
        except OSError:
            pass
        finally:
            _close(server)
            _close(client)

    def _completes(self, state: _Connection, tag: bytes) -> bool:
        """Track a CommandComplete; True when it is the commit to kill at."""
        if tag.startswith(_WRITES) and not tag.endswith(b" 0"):
            state.wrote = True
        elif tag == b"ROLLBACK":
            state.wrote = False
        elif tag == b"COMMIT":
            wrote, state.wrote = state.wrote, False
            with self._lock:
                if not wrote or self._armed is None or state.application_name != self._armed[1]:
                    return False
                self._writes += 1
                if self._writes < self._armed[0]:
                    return False
                self._armed = None
                return True
        return False

    def _kill(self) -> None:
        self._victim_named.wait()
        assert self._victim is not None
        os.kill(self._victim, signal.SIGKILL)
        self.killed.set()


class _Connection:
    """What the proxy knows of one relayed connection."""

    def __init__(self) -> None:
        self.application_name: str | None = None
        self.wrote = False


@contextmanager
def pg_proxy(dsn: str) -> Iterator[PgProxy]:
    """A ``PgProxy`` in front of ``dsn``'s server, closed after the block."""
    params = psycopg.conninfo.conninfo_to_dict(dsn)
    proxy = PgProxy(str(params.get("host") or "127.0.0.1"), int(params.get("port") or 5432))
    try:
        yield proxy
    finally:
        proxy.close()


def _connect(target: tuple[str, int]) -> socket.socket:
    """A socket to the server: TCP, or its Unix socket when the host is a folder."""
    host, port = target
    if host.startswith("/"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(f"{host}/.s.PGSQL.{port}")
        return sock
    return socket.create_connection(target)


def _startup_parameter(body: bytes, name: str) -> str | None:
    """A parameter of a startup message's body (after its length: protocol, pairs)."""
    fields = body[4:].split(b"\0")
    pairs = dict(zip(fields[0::2], fields[1::2], strict=False))
    value = pairs.get(name.encode())
    return None if value is None else value.decode()


def _read_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = sock.recv(n - len(data))
        if not part:
            raise OSError("connection closed")
        data += part
    return data


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
