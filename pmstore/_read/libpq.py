"""The compiled message loop (``pmstore._copydata``) and the libpq it calls.

    loop = compiled_loop(conn.pgconn)     # None: use the Python loop
    taken, stop = loop.take(batch.data, sizes, limit)

The loop calls ``PQgetCopyData`` and ``PQfreemem`` of the very libpq that opened
the connection, by address: the one bundled in ``psycopg_binary`` (psycopg's
``binary`` implementation), else the one psycopg's ``c`` and ``python``
implementations load (``psycopg.pq.misc.find_libpq_full_path``, on Linux where
the name loaded is the copy linked). The library must report the version psycopg
reports (``PQlibVersion``), and before a stream is taken that way ``PQbackendPID``
through it must agree with psycopg's own ``backend_pid`` for the connection: a
libpq that is not the connection's never reads it.

``compiled_loop`` returns None, and ``pmstore._read.bulk`` takes the messages in
Python (the same loop, slower per message), when pmstore was installed without
its compiled module (no C compiler at build time), when the libpq cannot be found
or does not agree, or on an implementation without ``pgconn_ptr``; and a stream
whose connection was closed meanwhile goes back to the Python loop, which raises.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from psycopg import pq
from psycopg.pq.misc import find_libpq_full_path

from pmstore._optional import compiled_module

__all__ = [
    "STOP_ENDED",
    "STOP_FAILED",
    "STOP_TRAILER",
    "STOP_WAIT",
    "CompiledLoop",
    "compiled_loop",
    "libpq_path",
]

STOP_WAIT: Final = 1
"""``take`` stopped: no whole message is ready."""
STOP_TRAILER: Final = 2
"""``take`` stopped: its last message is the binary trailer."""
STOP_ENDED: Final = 3
"""``take`` stopped: libpq reported the end of the COPY data."""
STOP_FAILED: Final = 4
"""``take`` stopped: libpq reported an error (on the connection)."""


@dataclass(frozen=True, slots=True)
class Libpq:
    """The addresses of the libpq functions the loop calls, and a check of the library."""

    get_copy_data: int
    free_mem: int
    backend_pid: Any
    """``PQbackendPID`` through ctypes."""


@dataclass(frozen=True, slots=True)
class CompiledLoop:
    """The compiled loop bound to one connection's ``PGconn``."""

    module: ModuleType
    pgconn: pq.abc.PGconn
    pgconn_ptr: int
    libpq: Libpq

    @property
    def usable(self) -> bool:
        """Whether the connection is still the one bound (psycopg clears its pointer
        when it closes: the loop must then not run, the Python loop raises)."""
        return bool(getattr(self.pgconn, "pgconn_ptr", None) == self.pgconn_ptr)

    def take(self, data: bytearray, sizes: bytearray, limit: int) -> tuple[int, int]:
        """Append up to ``limit`` ready messages to ``data`` and their sizes (native
        int64s) to ``sizes``; return (messages taken, why it stopped: 0 the limit,
        else a ``STOP_*``). Never blocks; releases the GIL while taking, 256
        messages at a time (so a ``close()`` of the connection from another thread
        must not race it: psycopg's connections are not shared while reading).
        Check ``usable`` first."""
        lib = self.libpq
        taken, stop = self.module.take(
            self.pgconn_ptr, lib.get_copy_data, lib.free_mem, data, sizes, limit
        )
        return int(taken), int(stop)


def libpq_path() -> str | None:
    """The file of the libpq psycopg's connections run on, or None when not found."""
    if pq.__impl__ == "c" and sys.platform != "linux":
        return None  # elsewhere find_library may name another copy than the one linked
    if pq.__impl__ == "binary":
        binary = sys.modules.get("psycopg_binary")
        if binary is None or binary.__file__ is None:
            return None
        libs = Path(binary.__file__).parent.parent / "psycopg_binary.libs"
        bundled = sorted(libs.glob("libpq*"))
        return str(bundled[0]) if len(bundled) == 1 else None
    return find_libpq_full_path()


@functools.cache
def load_libpq() -> Libpq | None:
    """The libpq functions (found and loaded once per process), or None."""
    path = libpq_path()
    if path is None:
        return None
    try:
        lib = ctypes.CDLL(path)
        get_copy_data = ctypes.cast(lib.PQgetCopyData, ctypes.c_void_p).value
        free_mem = ctypes.cast(lib.PQfreemem, ctypes.c_void_p).value
        backend_pid = lib.PQbackendPID
        lib_version = lib.PQlibVersion
    except (OSError, AttributeError):
        return None
    lib_version.argtypes = []
    lib_version.restype = ctypes.c_int
    if not get_copy_data or not free_mem or lib_version() != pq.version():
        return None  # not the libpq psycopg reports running on
    backend_pid.argtypes = [ctypes.c_void_p]
    backend_pid.restype = ctypes.c_int
    return Libpq(get_copy_data, free_mem, backend_pid)


def compiled_loop(pgconn: pq.abc.PGconn) -> CompiledLoop | None:
    """The compiled loop for ``pgconn``, or None (see the module notes). Costs one
    ``PQbackendPID`` call (and, once per process, finding and loading libpq)."""
    module = compiled_module()
    ptr = getattr(pgconn, "pgconn_ptr", None)
    if module is None or not ptr:
        return None
    libpq = load_libpq()
    if libpq is None or libpq.backend_pid(ptr) != pgconn.backend_pid:
        return None
    return CompiledLoop(module, pgconn, ptr, libpq)
