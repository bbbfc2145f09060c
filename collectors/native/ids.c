/* Event ids of a batch of keys: BLAKE2b (RFC 7693) with a 16-byte digest, no key, in lowercase hex.
 *
 * `blake2b128_hex(offsets, data, offset, length, wide)` reads an Arrow binary (int32 offsets) or large_binary
 * (`wide`: int64 offsets) array through the buffer protocol and returns `(offsets, data, fingerprints)` as
 * three new bytes objects: the int32 offsets and the characters of an Arrow string array holding one
 * 32-character digest per key, equal to `hashlib.blake2b(key, digest_size=16).hexdigest()`, and each digest's
 * first eight bytes as an int64 (little-endian), which lets the caller test a batch's ids for repeats on
 * integers (equal ids have equal fingerprints).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define BLOCK 128
#define DIGEST 16

static const uint64_t IV[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

/* RFC 7693 section 2.7: the message word schedule of rounds 0-9 (rounds 10 and 11 repeat rounds 0 and 1). */
static const uint8_t SIGMA[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, unsigned n) { return (x >> n) | (x << (64 - n)); }

static inline uint64_t load64(const uint8_t *p) {
    return (uint64_t)p[0] | ((uint64_t)p[1] << 8) | ((uint64_t)p[2] << 16) | ((uint64_t)p[3] << 24) |
           ((uint64_t)p[4] << 32) | ((uint64_t)p[5] << 40) | ((uint64_t)p[6] << 48) | ((uint64_t)p[7] << 56);
}

#define G(a, b, c, d, x, y)                 \
    do {                                    \
        v[a] = v[a] + v[b] + (x);           \
        v[d] = rotr64(v[d] ^ v[a], 32);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 24);     \
        v[a] = v[a] + v[b] + (y);           \
        v[d] = rotr64(v[d] ^ v[a], 16);     \
        v[c] = v[c] + v[d];                 \
        v[b] = rotr64(v[b] ^ v[c], 63);     \
    } while (0)

/* RFC 7693 section 3.2: compress one 128-byte block; `counter` is the byte count so far (a key of this
 * module is shorter than 2**64 bytes, so the counter's high word stays 0). */
static void compress(uint64_t h[8], const uint8_t block[BLOCK], uint64_t counter, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) m[i] = load64(block + 8 * i);
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = IV[i];
    }
    v[12] ^= counter;
    if (last) v[14] = ~v[14];
#pragma GCC unroll 12
    for (int round = 0; round < 12; round++) {
        const uint8_t *s = SIGMA[round];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* Writes the hex digest to `out` and returns its first eight bytes read as a little-endian integer. */
static uint64_t blake2b128_hex(const uint8_t *key, size_t length, char out[2 * DIGEST]) {
    static const char HEX[] = "0123456789abcdef";
    uint64_t h[8];
    memcpy(h, IV, sizeof h);
    h[0] ^= 0x01010000ULL ^ DIGEST; /* parameter block: digest length 16, key length 0, fanout 1, depth 1 */
    uint64_t done = 0;
    while (length - done > BLOCK) { /* every full block but the last goes through unflagged */
        compress(h, key + done, done + BLOCK, 0);
        done += BLOCK;
    }
    uint8_t last[BLOCK] = {0};
    if (length > done) memcpy(last, key + done, length - done);
    compress(h, last, length, 1);
    for (int i = 0; i < DIGEST; i++) {
        uint8_t byte = (uint8_t)(h[i / 8] >> (8 * (i % 8)));
        out[2 * i] = HEX[byte >> 4];
        out[2 * i + 1] = HEX[byte & 15];
    }
    return h[0];
}

static int64_t offset_at(const Py_buffer *offsets, Py_ssize_t index, int wide) {
    if (wide) {
        int64_t value;
        memcpy(&value, (const char *)offsets->buf + index * 8, 8);
        return value;
    }
    int32_t value;
    memcpy(&value, (const char *)offsets->buf + index * 4, 4);
    return value;
}

static PyObject *py_blake2b128_hex(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer offsets, data;
    Py_ssize_t offset, length;
    int wide;
    if (!PyArg_ParseTuple(args, "y*y*nnp", &offsets, &data, &offset, &length, &wide)) return NULL;
    PyObject *result = NULL, *out_offsets = NULL, *out_data = NULL, *out_fingerprints = NULL;
    Py_ssize_t width = wide ? 8 : 4;
    if (offset < 0 || length < 0 || offset > PY_SSIZE_T_MAX / width - length - 1 ||
        (offset + length + 1) * width > offsets.len) {
        PyErr_SetString(PyExc_ValueError, "the offsets buffer is shorter than offset + length + 1 entries");
        goto done;
    }
    if (length > (INT32_MAX - 1) / (2 * DIGEST)) {
        PyErr_SetString(PyExc_ValueError, "too many keys for one string array");
        goto done;
    }
    for (Py_ssize_t i = 0; i < length; i++) { /* checked whole before any hashing */
        int64_t start = offset_at(&offsets, offset + i, wide), end = offset_at(&offsets, offset + i + 1, wide);
        if (start < 0 || end < start || end > data.len) {
            PyErr_Format(PyExc_ValueError, "key %zd lies outside the data buffer", i);
            goto done;
        }
    }
    out_offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    out_data = PyBytes_FromStringAndSize(NULL, length * 2 * DIGEST);
    out_fingerprints = PyBytes_FromStringAndSize(NULL, length * 8);
    if (out_offsets == NULL || out_data == NULL || out_fingerprints == NULL) goto done;
    char *fingerprints = PyBytes_AS_STRING(out_fingerprints);
    int32_t *positions = (int32_t *)PyBytes_AS_STRING(out_offsets);
    char *text = PyBytes_AS_STRING(out_data);
    const uint8_t *bytes = data.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i <= length; i++) positions[i] = (int32_t)(i * 2 * DIGEST);
    for (Py_ssize_t i = 0; i < length; i++) {
        int64_t start = offset_at(&offsets, offset + i, wide), end = offset_at(&offsets, offset + i + 1, wide);
        uint64_t fingerprint = blake2b128_hex(bytes + start, (size_t)(end - start), text + i * 2 * DIGEST);
        memcpy(fingerprints + i * 8, &fingerprint, 8);
    }
    Py_END_ALLOW_THREADS
    result = PyTuple_Pack(3, out_offsets, out_data, out_fingerprints);
done:
    Py_XDECREF(out_fingerprints);
    Py_XDECREF(out_offsets);
    Py_XDECREF(out_data);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef METHODS[] = {
    {"blake2b128_hex", py_blake2b128_hex, METH_VARARGS,
     "blake2b128_hex(offsets, data, offset, length, wide) -> (offsets, data, fingerprints): an Arrow string "
     "array of hashlib.blake2b(key, digest_size=16).hexdigest() of every key, and each digest's first 8 bytes "
     "as int64."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "collectors._ids", NULL, 0, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ids(void) { return PyModule_Create(&MODULE); }
