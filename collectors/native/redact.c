/* Which lines of a batch may hold a free-text secret: a pre-test for `collectors.redact.redact_text_column`.
 *
 * `candidates(offsets, data, offset, length)` reads an Arrow string array (int32 offsets) through the buffer
 * protocol and returns `(count, bitmap)`: an Arrow boolean bitmap (LSB first) with a bit set for every line
 * the expression `_TEXT_SECRET_RE2` could match, and how many bits are set. The caller runs the expression on
 * those lines only.
 *
 * Why it can only over-report: every match of
 *     (?i)\b(?:password|passwd|pass|secret|token|api[_-]?key|access[_-]?key|secret[_-]?key)\s*[=:]...
 * holds a keyword, then RE2's `\s*` ([\t\n\f\r ]: ASCII only), then '=' or ':', within one line; each keyword
 * ends with one of `pass`, `passwd`, `password`, `secret`, `token`, `key`. In a line of ASCII bytes only, the
 * matched keyword is ASCII, and RE2's case folding relates an ASCII letter to its other ASCII case and to
 * non-ASCII letters alone (U+017F for s, U+212A for k), so the keyword's text equals one of those endings
 * ignoring ASCII case. A line is therefore reported when it holds a byte outside ASCII, or a '=' or ':' that
 * follows (past [\t\n\v\f\r ]*) one of the six endings in either ASCII case. The word boundary is not tested.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static const char *const ENDINGS[] = {"password", "passwd", "pass", "secret", "token", "key"};

static int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

/* Does `text[begin:end]`, past trailing spaces, end with one of ENDINGS in either ASCII case? */
static int after_ending(const uint8_t *text, int64_t begin, int64_t end) {
    while (end > begin && is_space(text[end - 1])) end--;
    if (end == begin) return 0;
    uint8_t last = text[end - 1] | 0x20;
    if (last != 'd' && last != 's' && last != 't' && last != 'n' && last != 'y') return 0;
    for (size_t k = 0; k < sizeof ENDINGS / sizeof ENDINGS[0]; k++) {
        int64_t size = (int64_t)strlen(ENDINGS[k]);
        if (size > end - begin) continue;
        const uint8_t *tail = text + end - size;
        int64_t j = 0;
        while (j < size && (uint8_t)(tail[j] | 0x20) == (uint8_t)ENDINGS[k][j]) j++;
        if (j == size) return 1;
    }
    return 0;
}

static PyObject *py_candidates(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer offsets, data;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "y*y*nn", &offsets, &data, &offset, &length)) return NULL;
    PyObject *result = NULL, *bitmap = NULL;
    if (offset < 0 || length < 0 || offset > PY_SSIZE_T_MAX / 4 - length - 1 || (offset + length + 1) * 4 > offsets.len) {
        PyErr_SetString(PyExc_ValueError, "the offsets buffer is shorter than offset + length + 1 entries");
        goto done;
    }
    const char *positions = offsets.buf;
    for (Py_ssize_t i = 0; i < length; i++) { /* checked whole before any read */
        int32_t start, end;
        memcpy(&start, positions + (offset + i) * 4, 4);
        memcpy(&end, positions + (offset + i + 1) * 4, 4);
        if (start < 0 || end < start || end > data.len) {
            PyErr_Format(PyExc_ValueError, "line %zd lies outside the data buffer", i);
            goto done;
        }
    }
    bitmap = PyBytes_FromStringAndSize(NULL, (length + 7) / 8);
    if (bitmap == NULL) goto done;
    uint8_t *bits = (uint8_t *)PyBytes_AS_STRING(bitmap);
    memset(bits, 0, (size_t)((length + 7) / 8));
    const uint8_t *bytes = data.buf;
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    /* One pass over the lines' bytes, sixteen at a time (SSE2 on x86-64): a flagged byte marks the line it lies in (the lines are
     * consecutive; the look back for an ending may cross into the line before, which only adds a candidate). */
    int32_t begin = 0, stop = 0, row_end = 0;
    if (length > 0) {
        memcpy(&begin, positions + offset * 4, 4);
        memcpy(&stop, positions + (offset + length) * 4, 4);
        memcpy(&row_end, positions + (offset + 1) * 4, 4);
    }
    Py_ssize_t row = 0, marked = -1;
    int64_t p = begin;
    while (p < stop) {
        uint32_t flagged; /* bit k: byte p + k is outside ASCII, '=' or ':' */
        int64_t width = stop - p < 16 ? stop - p : 16;
#ifdef __SSE2__
        if (width == 16) {
            __m128i chunk = _mm_loadu_si128((const __m128i *)(bytes + p));
            __m128i marks = _mm_or_si128(_mm_cmpeq_epi8(chunk, _mm_set1_epi8('=')),
                                         _mm_cmpeq_epi8(chunk, _mm_set1_epi8(':')));
            flagged = (uint32_t)_mm_movemask_epi8(_mm_or_si128(marks, chunk));
        } else
#endif
        {
            flagged = 0;
            for (int64_t k = 0; k < width; k++) {
                uint8_t c = bytes[p + k];
                if (c >= 0x80 || c == '=' || c == ':') flagged |= 1u << k;
            }
        }
        while (flagged) {
            int64_t at = p + __builtin_ctz(flagged);
            flagged &= flagged - 1;
            if (bytes[at] < 0x80 && !after_ending(bytes, begin, at)) continue;
            while (row_end <= at) { /* the line holding byte `at`: positions only grow */
                row++;
                memcpy(&row_end, positions + (offset + row + 1) * 4, 4);
            }
            if (row != marked) {
                bits[row / 8] |= (uint8_t)(1u << (row % 8));
                marked = row;
                count++;
            }
        }
        p += width;
    }
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nO", count, bitmap);
done:
    Py_XDECREF(bitmap);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef METHODS[] = {
    {"candidates", py_candidates, METH_VARARGS,
     "candidates(offsets, data, offset, length) -> (count, bitmap): the lines of an Arrow string array that "
     "collectors.redact's free-text expression could match (a superset), as an Arrow boolean bitmap."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "collectors._redact", NULL, 0, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__redact(void) { return PyModule_Create(&MODULE); }
