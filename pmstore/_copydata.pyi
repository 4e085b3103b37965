# The compiled module (_copydata.c): pmstore._read.libpq binds and calls take;
# pmstore.frames.copy_decoding calls walk; pmstore._read.gaps calls runs.
from typing_extensions import Buffer

def take(
    pgconn_ptr: int,
    get_copy_data: int,
    free_mem: int,
    data: bytearray,
    sizes: bytearray,
    limit: int,
    /,
) -> tuple[int, int]: ...
def walk(
    data: Buffer,
    starts: Buffer,
    ends: Buffer,
    fields: int,
    offsets: Buffer,
    lengths: Buffer,
    /,
) -> tuple[int, bool] | None: ...
def runs(
    blobs: list[bytes],
    origin: int,
    width: int,
    steps: int,
    out: bytearray,
    /,
) -> bool: ...
