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
#include <stdlib.h>
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

static void write_hex(const uint64_t h[2], char out[2 * DIGEST]) {
    static const char HEX[] = "0123456789abcdef";
    for (int i = 0; i < DIGEST; i++) {
        uint8_t byte = (uint8_t)(h[i / 8] >> (8 * (i % 8)));
        out[2 * i] = HEX[byte >> 4];
        out[2 * i + 1] = HEX[byte & 15];
    }
}

/* Writes the hex digest to `out` and returns its first eight bytes read as a little-endian integer. */
static uint64_t blake2b128_hex(const uint8_t *key, size_t length, char out[2 * DIGEST]) {
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
    write_hex(h, out);
    return h[0];
}

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define FOUR_LANES 1

/* Four keys at once, one in each 64-bit lane of AVX2 registers: the same compression as `compress`, each
 * lane with its own byte counter and last-block flag; a lane whose key has fewer blocks keeps its state
 * once its last block is done. */
#define ROTR32(x) _mm256_shuffle_epi32((x), _MM_SHUFFLE(2, 3, 0, 1))
#define ROTR24(x) _mm256_shuffle_epi8((x), rotate24)
#define ROTR16(x) _mm256_shuffle_epi8((x), rotate16)
#define ROTR63(x) _mm256_or_si256(_mm256_srli_epi64((x), 63), _mm256_add_epi64((x), (x)))
#define G4(a, b, c, d, x, y)                                               \
    do {                                                                   \
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), (x));        \
        v[d] = ROTR32(_mm256_xor_si256(v[d], v[a]));                       \
        v[c] = _mm256_add_epi64(v[c], v[d]);                               \
        v[b] = ROTR24(_mm256_xor_si256(v[b], v[c]));                       \
        v[a] = _mm256_add_epi64(_mm256_add_epi64(v[a], v[b]), (y));        \
        v[d] = ROTR16(_mm256_xor_si256(v[d], v[a]));                       \
        v[c] = _mm256_add_epi64(v[c], v[d]);                               \
        v[b] = ROTR63(_mm256_xor_si256(v[b], v[c]));                       \
    } while (0)

static size_t blocks_of(size_t length) { return length == 0 ? 1 : (length + BLOCK - 1) / BLOCK; }

__attribute__((target("avx2"))) static void blake2b128_hex_x4(const uint8_t *const keys[4],
                                                              const size_t lengths[4], char *const outs[4],
                                                              uint64_t fingerprints[4]) {
    const __m256i rotate24 = _mm256_setr_epi8(3, 4, 5, 6, 7, 0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10, 3, 4, 5, 6, 7,
                                              0, 1, 2, 11, 12, 13, 14, 15, 8, 9, 10);
    const __m256i rotate16 = _mm256_setr_epi8(2, 3, 4, 5, 6, 7, 0, 1, 10, 11, 12, 13, 14, 15, 8, 9, 2, 3, 4, 5, 6, 7,
                                              0, 1, 10, 11, 12, 13, 14, 15, 8, 9);
    __m256i h[8];
    for (int i = 0; i < 8; i++) h[i] = _mm256_set1_epi64x((long long)IV[i]);
    h[0] = _mm256_xor_si256(h[0], _mm256_set1_epi64x((long long)(0x01010000ULL ^ DIGEST)));
    size_t blocks[4], most = 0;
    for (int lane = 0; lane < 4; lane++) {
        blocks[lane] = blocks_of(lengths[lane]);
        if (blocks[lane] > most) most = blocks[lane];
    }
    for (size_t block = 0; block < most; block++) {
        static const uint8_t NOTHING[BLOCK] = {0};
        uint8_t last[4][BLOCK];
        const uint8_t *source[4];
        uint64_t counter[4], flag[4], active[4];
        for (int lane = 0; lane < 4; lane++) {
            counter[lane] = flag[lane] = active[lane] = 0;
            source[lane] = NOTHING;
            if (block + 1 < blocks[lane]) {
                source[lane] = keys[lane] + block * BLOCK;
                counter[lane] = (block + 1) * BLOCK;
                active[lane] = ~0ULL;
            } else if (block + 1 == blocks[lane]) {
                size_t rest = lengths[lane] - block * BLOCK;
                memset(last[lane], 0, BLOCK);
                if (rest) memcpy(last[lane], keys[lane] + block * BLOCK, rest);
                source[lane] = last[lane];
                counter[lane] = lengths[lane];
                flag[lane] = active[lane] = ~0ULL;
            }
        }
        __m256i m[16], v[16];
        for (int group = 0; group < 4; group++) { /* four words of each lane, transposed into four registers */
            __m256i r0 = _mm256_loadu_si256((const __m256i *)(source[0] + 32 * group));
            __m256i r1 = _mm256_loadu_si256((const __m256i *)(source[1] + 32 * group));
            __m256i r2 = _mm256_loadu_si256((const __m256i *)(source[2] + 32 * group));
            __m256i r3 = _mm256_loadu_si256((const __m256i *)(source[3] + 32 * group));
            __m256i t0 = _mm256_unpacklo_epi64(r0, r1), t1 = _mm256_unpackhi_epi64(r0, r1);
            __m256i t2 = _mm256_unpacklo_epi64(r2, r3), t3 = _mm256_unpackhi_epi64(r2, r3);
            m[4 * group] = _mm256_permute2x128_si256(t0, t2, 0x20);
            m[4 * group + 1] = _mm256_permute2x128_si256(t1, t3, 0x20);
            m[4 * group + 2] = _mm256_permute2x128_si256(t0, t2, 0x31);
            m[4 * group + 3] = _mm256_permute2x128_si256(t1, t3, 0x31);
        }
        for (int i = 0; i < 8; i++) {
            v[i] = h[i];
            v[i + 8] = _mm256_set1_epi64x((long long)IV[i]);
        }
        v[12] = _mm256_xor_si256(v[12], _mm256_setr_epi64x((long long)counter[0], (long long)counter[1],
                                                           (long long)counter[2], (long long)counter[3]));
        v[14] = _mm256_xor_si256(v[14], _mm256_setr_epi64x((long long)flag[0], (long long)flag[1],
                                                           (long long)flag[2], (long long)flag[3]));
#pragma GCC unroll 12
        for (int round = 0; round < 12; round++) {
            const uint8_t *s = SIGMA[round];
            G4(0, 4, 8, 12, m[s[0]], m[s[1]]);
            G4(1, 5, 9, 13, m[s[2]], m[s[3]]);
            G4(2, 6, 10, 14, m[s[4]], m[s[5]]);
            G4(3, 7, 11, 15, m[s[6]], m[s[7]]);
            G4(0, 5, 10, 15, m[s[8]], m[s[9]]);
            G4(1, 6, 11, 12, m[s[10]], m[s[11]]);
            G4(2, 7, 8, 13, m[s[12]], m[s[13]]);
            G4(3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        __m256i keep = _mm256_setr_epi64x((long long)active[0], (long long)active[1], (long long)active[2],
                                          (long long)active[3]);
        for (int i = 0; i < 8; i++) {
            __m256i next = _mm256_xor_si256(h[i], _mm256_xor_si256(v[i], v[i + 8]));
            h[i] = _mm256_blendv_epi8(h[i], next, keep);
        }
    }
    uint64_t lanes[2][4];
    _mm256_storeu_si256((__m256i *)lanes[0], h[0]);
    _mm256_storeu_si256((__m256i *)lanes[1], h[1]);
    for (int lane = 0; lane < 4; lane++) {
        uint64_t state[2] = {lanes[0][lane], lanes[1][lane]};
        write_hex(state, outs[lane]);
        fingerprints[lane] = state[0];
    }
}
#endif

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
    Py_ssize_t i = 0;
#ifdef FOUR_LANES
    if (__builtin_cpu_supports("avx2")) {
        for (; i + 4 <= length; i += 4) {
            const uint8_t *keys[4];
            size_t lengths[4];
            char *outs[4];
            uint64_t prints[4];
            for (int lane = 0; lane < 4; lane++) {
                int64_t start = offset_at(&offsets, offset + i + lane, wide);
                keys[lane] = bytes + start;
                lengths[lane] = (size_t)(offset_at(&offsets, offset + i + lane + 1, wide) - start);
                outs[lane] = text + (i + lane) * 2 * DIGEST;
            }
            blake2b128_hex_x4(keys, lengths, outs, prints);
            memcpy(fingerprints + i * 8, prints, sizeof prints);
        }
    }
#endif
    for (; i < length; i++) {
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

/* Reads `length` int64 values from `offset` of an Arrow int64 buffer (a tuple item: (buffer, offset, length)). */
static int int64_run(PyObject *item, Py_buffer *view, Py_ssize_t *offset, Py_ssize_t *length) {
    if (!PyArg_ParseTuple(item, "y*nn", view, offset, length)) return -1;
    if (*offset < 0 || *length < 0 || *offset > PY_SSIZE_T_MAX / 8 - *length || (*offset + *length) * 8 > view->len) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "an int64 buffer is shorter than offset + length values");
        return -1;
    }
    return 0;
}

/* Open addressing over the values themselves (digest bytes: uniform), 0 kept apart as the empty slot. */
static int seen_before(int64_t *slots, uint64_t mask, int *zero_seen, int64_t value, int insert) {
    if (value == 0) {
        int seen = *zero_seen;
        if (insert) *zero_seen = 1;
        return seen;
    }
    uint64_t at = ((uint64_t)value ^ ((uint64_t)value >> 29)) & mask;
    while (slots[at] != 0) {
        if (slots[at] == value) return 1;
        at = (at + 1) & mask;
    }
    if (insert) slots[at] = value;
    return 0;
}

static PyObject *py_any_repeat(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *current, *known;
    if (!PyArg_ParseTuple(args, "OO!", &current, &PyTuple_Type, &known)) return NULL;
    Py_buffer view;
    Py_ssize_t offset, length;
    if (int64_run(current, &view, &offset, &length) < 0) return NULL;
    uint64_t size = 16;
    while (size < (uint64_t)length * 2) size <<= 1;
    int64_t *slots = calloc(size, sizeof(int64_t));
    if (slots == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    int zero_seen = 0, repeat = 0;
    const char *values = (const char *)view.buf + offset * 8;
    for (Py_ssize_t i = 0; i < length && !repeat; i++) {
        int64_t value;
        memcpy(&value, values + i * 8, 8);
        repeat = seen_before(slots, size - 1, &zero_seen, value, 1);
    }
    PyBuffer_Release(&view);
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(known) && !repeat; k++) {
        Py_ssize_t known_offset, known_length;
        if (int64_run(PyTuple_GET_ITEM(known, k), &view, &known_offset, &known_length) < 0) {
            free(slots);
            return NULL;
        }
        values = (const char *)view.buf + known_offset * 8;
        for (Py_ssize_t i = 0; i < known_length && !repeat; i++) {
            int64_t value;
            memcpy(&value, values + i * 8, 8);
            repeat = seen_before(slots, size - 1, &zero_seen, value, 0);
        }
        PyBuffer_Release(&view);
    }
    free(slots);
    return PyBool_FromLong(repeat);
}

/* Decimal text of `value` (as Arrow's cast of int64 to string writes it) at `out`; returns its length. */
static size_t write_decimal(int64_t value, char *out) {
    char digits[20];
    size_t count = 0, size = 0;
    uint64_t magnitude = value < 0 ? (uint64_t)0 - (uint64_t)value : (uint64_t)value;
    do {
        digits[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (value < 0) out[size++] = '-';
    while (count) out[size++] = digits[--count];
    return size;
}

static PyObject *py_event_keys(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer prefix, times, offsets, data;
    Py_ssize_t times_offset, offset, length;
    if (!PyArg_ParseTuple(args, "y*y*ny*y*nn", &prefix, &times, &times_offset, &offsets, &data, &offset, &length))
        return NULL;
    PyObject *result = NULL, *out_offsets = NULL, *out_data = NULL;
    if (times_offset < 0 || length < 0 || times_offset > PY_SSIZE_T_MAX / 8 - length ||
        (times_offset + length) * 8 > times.len) {
        PyErr_SetString(PyExc_ValueError, "the times buffer is shorter than offset + length values");
        goto done;
    }
    if (offset < 0 || offset > PY_SSIZE_T_MAX / 4 - length - 1 || (offset + length + 1) * 4 > offsets.len) {
        PyErr_SetString(PyExc_ValueError, "the offsets buffer is shorter than offset + length + 1 entries");
        goto done;
    }
    const char *positions = offsets.buf;
    int64_t total = 0;
    for (Py_ssize_t i = 0; i < length; i++) { /* checked whole, and the keys' size summed, before any copy */
        int32_t start, end;
        memcpy(&start, positions + (offset + i) * 4, 4);
        memcpy(&end, positions + (offset + i + 1) * 4, 4);
        if (start < 0 || end < start || end > data.len) {
            PyErr_Format(PyExc_ValueError, "content %zd lies outside the data buffer", i);
            goto done;
        }
        total += (int64_t)prefix.len + 20 + 1 + (end - start);
        if (total > INT32_MAX) {
            PyErr_SetString(PyExc_ValueError, "the keys do not fit one binary array (2 GiB)");
            goto done;
        }
    }
    out_offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    out_data = PyBytes_FromStringAndSize(NULL, total);
    if (out_offsets == NULL || out_data == NULL) goto done;
    int32_t *keys = (int32_t *)PyBytes_AS_STRING(out_offsets);
    char *text = PyBytes_AS_STRING(out_data);
    const char *moments = (const char *)times.buf + times_offset * 8;
    int32_t size = 0;
    keys[0] = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        int32_t start, end;
        int64_t moment;
        memcpy(&start, positions + (offset + i) * 4, 4);
        memcpy(&end, positions + (offset + i + 1) * 4, 4);
        memcpy(&moment, moments + i * 8, 8);
        memcpy(text + size, prefix.buf, (size_t)prefix.len);
        size += (int32_t)prefix.len;
        size += (int32_t)write_decimal(moment, text + size);
        text[size++] = 0x1f;
        memcpy(text + size, (const char *)data.buf + start, (size_t)(end - start));
        size += end - start;
        keys[i + 1] = size;
    }
    if (_PyBytes_Resize(&out_data, size) < 0) goto done;
    result = PyTuple_Pack(2, out_offsets, out_data);
done:
    Py_XDECREF(out_offsets);
    Py_XDECREF(out_data);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&times);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef METHODS[] = {
    {"any_repeat", py_any_repeat, METH_VARARGS,
     "any_repeat((buffer, offset, length), ((buffer, offset, length), ...)) -> bool: whether an int64 value of the "
     "first run occurs twice in it or occurs in one of the others (pc.count_distinct and pc.is_in in one pass)."},
    {"blake2b128_hex", py_blake2b128_hex, METH_VARARGS,
     "blake2b128_hex(offsets, data, offset, length, wide) -> (offsets, data, fingerprints): an Arrow string "
     "array of hashlib.blake2b(key, digest_size=16).hexdigest() of every key, and each digest's first 8 bytes "
     "as int64."},
    {"event_keys", py_event_keys, METH_VARARGS,
     "event_keys(prefix, times, times_offset, offsets, data, offset, length) -> (offsets, data): the Arrow binary "
     "array of prefix + decimal(time) + 0x1f + content for every int64 time and binary content (citysoc.ids)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "collectors._ids", NULL, 0, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__ids(void) { return PyModule_Create(&MODULE); }
