# The compiled message loop (copydata.c); pmstore._read.libpq binds and calls it.
def take(
    pgconn_ptr: int,
    get_copy_data: int,
    free_mem: int,
    data: bytearray,
    sizes: bytearray,
    limit: int,
    /,
) -> tuple[int, int]: ...
