/* pmstore._copydata: the compiled steps of bulk reads and of coverage's gap search.
 * Optional (setup.py builds it where a C compiler is): each function has a Python
 * (or numpy) twin that is the reference, and pmstore runs the twin when this module
 * is missing or declines a batch.
 * Only Python's headers are needed: libpq's functions are passed by address.
 *
 * take(pgconn_ptr, get_copy_data, free_mem, data, sizes, limit) -> (taken, stop)
 *
 * Calls libpq's PQgetCopyData(conn, &buffer, async=1) until `limit` messages are
 * taken or it stops, CHUNK messages at a time with the GIL released; after each
 * chunk (GIL held) appends the messages' bytes to the bytearray `data`, their
 * sizes to the bytearray `sizes` (native int64s), and frees libpq's buffers.
 * The libpq functions come as addresses (`pmstore._read.libpq`): those of the very libpq that opened the
 * connection, which the caller has checked. It never blocks (async mode).
 *
 * stop: 0 the limit was reached; 1 no whole message is ready (wait for the
 * socket, consume input, call again); 2 the last message taken is the binary
 * trailer (b"\xff\xff", a message of its own); 3 libpq reported the end of
 * the COPY data (-1: fetch the results); 4 libpq reported an error (-2: its
 * error message is on the connection). The Python loop in
 * pmstore._read.bulk.CopyStream.take is the same loop, and the reference.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef int (*get_copy_data_fn)(void *conn, char **buffer, int async);
typedef void (*free_mem_fn)(void *ptr);

/* Messages taken between two appends (the GIL is taken back for each append). */
#define CHUNK 256

enum { STOP_LIMIT = 0, STOP_WAIT = 1, STOP_TRAILER = 2, STOP_ENDED = 3, STOP_FAILED = 4 };

static PyObject *
take(PyObject *self, PyObject *args)
{
    unsigned long long conn_addr, get_addr, free_addr;
    PyObject *data, *sizes;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "KKKO!O!n", &conn_addr, &get_addr, &free_addr,
                          &PyByteArray_Type, &data, &PyByteArray_Type, &sizes, &limit))
        return NULL;
    if (conn_addr == 0 || get_addr == 0 || free_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "a null connection or libpq function");
        return NULL;
    }
    if (limit <= 0)
        return Py_BuildValue("ni", (Py_ssize_t)0, STOP_LIMIT);
    void *conn = (void *)(uintptr_t)conn_addr;
    get_copy_data_fn get = (get_copy_data_fn)(uintptr_t)get_addr;
    free_mem_fn free_mem = (free_mem_fn)(uintptr_t)free_addr;

    Py_ssize_t taken = 0;
    int stop = STOP_LIMIT;
    while (taken < limit && stop == STOP_LIMIT) {
        /* A chunk: taken without the GIL into arrays on the stack, then appended. */
        char *buffers[CHUNK];
        int64_t lengths[CHUNK];
        Py_ssize_t chunk = limit - taken < CHUNK ? limit - taken : CHUNK;
        Py_ssize_t n = 0, total = 0;
        Py_BEGIN_ALLOW_THREADS
        while (n < chunk) {
            char *buffer = NULL;
            int nbytes = get(conn, &buffer, 1);
            if (nbytes > 0) {
                buffers[n] = buffer;
                lengths[n] = nbytes;
                n++;
                total += nbytes;
                if (nbytes == 2 && (unsigned char)buffer[0] == 0xff &&
                    (unsigned char)buffer[1] == 0xff) {
                    stop = STOP_TRAILER;
                    break;
                }
            } else if (nbytes == 0) {
                stop = STOP_WAIT;
                break;
            } else if (nbytes == -1) {
                stop = STOP_ENDED;
                break;
            } else {
                stop = STOP_FAILED;
                break;
            }
        }
        Py_END_ALLOW_THREADS

        Py_ssize_t data_len = PyByteArray_GET_SIZE(data);
        Py_ssize_t sizes_len = PyByteArray_GET_SIZE(sizes);
        int failed = PyByteArray_Resize(data, data_len + total) != 0;
        if (!failed &&
            PyByteArray_Resize(sizes, sizes_len + n * (Py_ssize_t)sizeof(int64_t)) != 0) {
            failed = 1;
            /* shrinking never fails: data keeps whole messages only */
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            (void)PyByteArray_Resize(data, data_len);
            PyErr_Restore(type, value, traceback);
        }
        if (!failed) {
            char *out = PyByteArray_AS_STRING(data) + data_len;
            for (Py_ssize_t i = 0; i < n; i++) {
                memcpy(out, buffers[i], (size_t)lengths[i]);
                out += lengths[i];
            }
            memcpy(PyByteArray_AS_STRING(sizes) + sizes_len, lengths,
                   (size_t)n * sizeof(int64_t));
        }
        for (Py_ssize_t i = 0; i < n; i++)
            free_mem(buffers[i]);
        if (failed)
            return NULL;
        taken += n;
        if (PyErr_CheckSignals() != 0)
            return NULL; /* e.g. Ctrl-C: the chunks taken are appended, the caller cancels */
    }
    return Py_BuildValue("ni", taken, stop);
}


static inline int32_t
read_i32(const unsigned char *p)
{
    return (int32_t)(((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
                     (uint32_t)p[3]);
}

static inline int64_t
read_i64(const unsigned char *p)
{
    uint64_t word;
    memcpy(&word, p, sizeof(word));
#if defined(__GNUC__) || defined(__clang__)
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    word = __builtin_bswap64(word);
#endif
#else
    word = ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
           ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
           ((uint64_t)p[6] << 8) | (uint64_t)p[7];
#endif
    return (int64_t)word;
}

static inline int16_t
read_i16(const unsigned char *p)
{
    return (int16_t)(((uint16_t)p[0] << 8) | (uint16_t)p[1]);
}

/* walk(data, starts, ends, fields, offsets, lengths) -> (rows, trailer) or None
 *
 * The fast path of pmstore.frames.copy_decoding's row walk, for the usual stream:
 * message i holds exactly one row, starting at starts[i] and ending at ends[i],
 * of `fields` fields; the last message may instead be the trailer alone. Fills
 * offsets (int64, (fields + 2) x n: each row's start, its first length word,
 * then each field's end) and lengths (int32, fields x n: -1 for NULL), and returns
 * the rows walked and whether the trailer was seen. Returns None for anything
 * else (a field count or a length that does not fit, several rows in a message):
 * the numpy walk then takes the batch, and raises what it must.
 */
static PyObject *
walk(PyObject *self, PyObject *args)
{
    Py_buffer data, starts, ends, offsets, lengths;
    int fields;
    if (!PyArg_ParseTuple(args, "y*y*y*iw*w*", &data, &starts, &ends, &fields, &offsets,
                          &lengths))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = starts.len / (Py_ssize_t)sizeof(int64_t);
    if (fields <= 0) { /* no columns: declined, the numpy walk decodes it */
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (ends.len != starts.len ||
        offsets.len < (Py_ssize_t)sizeof(int64_t) * n * ((Py_ssize_t)fields + 2) ||
        lengths.len < (Py_ssize_t)sizeof(int32_t) * n * (Py_ssize_t)fields) {
        PyErr_SetString(PyExc_ValueError, "walk: buffers of the wrong sizes");
        goto done;
    }
    const unsigned char *bytes = data.buf;
    const int64_t *start = starts.buf, *end = ends.buf;
    int64_t *offset = offsets.buf;
    int32_t *length = lengths.buf;
    Py_ssize_t rows = 0;
    int trailer = 0, regular = 1;
    for (Py_ssize_t i = 0; i < n && regular; i++) {
        int64_t at = start[i], stop = end[i];
        if (at < 0 || stop > data.len || stop - at < 2) {
            regular = 0;
            break;
        }
        int16_t count = read_i16(bytes + at);
        if (count == -1 && i == n - 1 && stop - at == 2) {
            trailer = 1;
            break;
        }
        if (count != fields) {
            regular = 0;
            break;
        }
        offset[rows] = at;
        at += 2;
        offset[n + rows] = at;
        for (int f = 0; f < fields; f++) {
            if (stop - at < 4) {
                regular = 0;
                break;
            }
            int32_t len = read_i32(bytes + at);
            if (len < -1 || (len > 0 && stop - at - 4 < len)) {
                regular = 0;
                break;
            }
            at += 4 + (len > 0 ? (int64_t)len : 0);
            length[(Py_ssize_t)f * n + rows] = len;
            offset[(Py_ssize_t)(f + 2) * n + rows] = at;
        }
        if (regular && at != stop)
            regular = 0;
        rows++;
    }
    if (regular)
        result = Py_BuildValue("nO", rows, trailer ? Py_True : Py_False);
    else
        result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&starts);
    PyBuffer_Release(&ends);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&lengths);
    return result;
}

/* The step of a timestamp: floor((t - origin) / width); 0 on overflow (declined). */
static inline int
step_of(int64_t t, int64_t origin, int64_t width, int64_t *step)
{
    if ((origin > 0 && t < INT64_MIN + origin) || (origin < 0 && t > INT64_MAX + origin))
        return 0;
    int64_t offset = t - origin;
    int64_t q = offset / width;
    if (offset % width != 0 && offset < 0)
        q -= 1;
    *step = q;
    return 1;
}

/* Appends one gap (token, first step, step after) to `out`; 0 when out of memory. */
static int
add_gap(PyObject *out, int64_t token, int64_t first, int64_t after)
{
    Py_ssize_t size = PyByteArray_GET_SIZE(out);
    if (PyByteArray_Resize(out, size + 3 * (Py_ssize_t)sizeof(int64_t)) != 0)
        return 0;
    int64_t gap[3] = {token, first, after};
    memcpy(PyByteArray_AS_STRING(out) + size, gap, sizeof(gap));
    return 1;
}

/* runs(blobs, origin, width, steps, out) -> bool
 *
 * The fast path of pmstore._read.gaps' gap search, for the usual rows: blobs[i] holds
 * one token's timestamps (8-byte big-endian µs, as timestamptz_send gives them) in
 * descending order (equal neighbours allowed). Appends to the bytearray `out` one
 * triple of native int64s per gap, (i, first missing step, step after the run), by
 * token then as found: the steps before the token's earliest timestamp, between two
 * neighbours more than a step apart, after its latest (steps of `width` µs from
 * `origin`, `steps` of them). Returns False, with `out` as it was, for anything else
 * (timestamps not descending, a step that overflows; an empty blob or a length not a
 * multiple of 8, which gap_runs refuses before): the numpy search then takes the
 * block, sorting where it must.
 */
static PyObject *
runs(PyObject *self, PyObject *args)
{
    PyObject *blobs, *out;
    long long origin, width, steps;
    if (!PyArg_ParseTuple(args, "O!LLLO!", &PyList_Type, &blobs, &origin, &width, &steps,
                          &PyByteArray_Type, &out))
        return NULL;
    if (width <= 0 || steps < 1) {
        PyErr_SetString(PyExc_ValueError, "runs: the step width and steps must be positive");
        return NULL;
    }
    Py_ssize_t kept = PyByteArray_GET_SIZE(out);
    Py_ssize_t count = PyList_GET_SIZE(blobs);
    int regular = 1;
    for (Py_ssize_t i = 0; i < count && regular; i++) {
        Py_buffer view;
        if (PyObject_GetBuffer(PyList_GET_ITEM(blobs, i), &view, PyBUF_SIMPLE) != 0)
            goto failed;
        const unsigned char *p = view.buf;
        Py_ssize_t n = view.len / 8;
        if (view.len == 0 || view.len % 8 != 0) {
            regular = 0;
        } else {
            int64_t previous = 0, highest = 0, lowest = 0;
            for (Py_ssize_t j = 0; j < n; j++) {
                int64_t t = read_i64(p + 8 * j);
                if (j == 0) {
                    if (!step_of(t, origin, width, &highest)) {
                        regular = 0;
                        break;
                    }
                } else if (t > previous) {
                    regular = 0; /* not descending */
                    break;
                } else if ((uint64_t)previous - (uint64_t)t > (uint64_t)width) {
                    int64_t upper, lower;
                    if (!step_of(previous, origin, width, &upper) ||
                        !step_of(t, origin, width, &lower)) {
                        regular = 0;
                        break;
                    }
                    if ((uint64_t)upper - (uint64_t)lower > 1 &&
                        !add_gap(out, i, lower + 1, upper)) {
                        PyBuffer_Release(&view);
                        goto failed;
                    }
                }
                previous = t;
            }
            if (regular && !step_of(previous, origin, width, &lowest))
                regular = 0;
            if (regular && ((lowest > 0 && !add_gap(out, i, 0, lowest)) ||
                            (highest < steps - 1 && !add_gap(out, i, highest + 1, steps)))) {
                PyBuffer_Release(&view);
                goto failed;
            }
        }
        PyBuffer_Release(&view);
    }
    if (!regular) {
        if (PyByteArray_Resize(out, kept) != 0)
            return NULL;
        Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
failed: {
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    (void)PyByteArray_Resize(out, kept); /* shrinking never fails */
    PyErr_Restore(type, value, traceback);
    return NULL;
}
}

static PyMethodDef methods[] = {
    {"take", take, METH_VARARGS,
     "take(pgconn_ptr, get_copy_data, free_mem, data, sizes, limit) -> (taken, stop)"},
    {"walk", walk, METH_VARARGS,
     "walk(data, starts, ends, fields, offsets, lengths) -> (rows, trailer) or None"},
    {"runs", runs, METH_VARARGS, "runs(blobs, origin, width, steps, out) -> bool"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "pmstore._copydata",
    "The compiled steps of bulk reads (see _copydata.c).", -1, methods,
};

PyMODINIT_FUNC
PyInit__copydata(void)
{
    return PyModule_Create(&module);
}
