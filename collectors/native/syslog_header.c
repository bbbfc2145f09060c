/* Syslog headers of a batch of lines in one pass each: the compiled twin of `collectors.syslog_header`'s
 * RFC 5424 shape test and its common BSD shape (`BSD_HEAD` on the text before the first ": ").
 *
 * `split_bsd(offsets, data, offset, length)` reads an Arrow string array (int32 offsets, valid UTF-8, no
 * nulls: the caller checks) through the buffer protocol and returns `(status, fields)`:
 * - `status`: one byte a line, 2 when the line has the RFC 5424 shape (`RFC5424_SHAPE`), 1 when the text
 *   before its first ": " (the whole line when there is none) matches `BSD_HEAD`, 0 otherwise;
 * - `fields`: for pri, month, day, clock, fraction, iso, host, facility, level, tag, pid and message, a tuple
 *   `(validity, offsets, data, null_count)` of a full-length Arrow string array: the regular expression's
 *   group where a status-1 line has it, null where the group is empty or the line is not status 1; the
 *   message of a status-1 line is what follows its first ": ", or "" when there is none.
 * The expressions are matched byte by byte: every character class they use excludes ASCII characters only,
 * and no byte of a multi-byte UTF-8 character is ASCII, so on valid UTF-8 a byte test decides the same as a
 * character test (newlines and NULs included, which RE2's negated classes match too). Each line is read once
 * from left to right (the facility.level attempt re-reads at most the words it covered), and no read goes
 * past the line's end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { PRI, MONTH, DAY, CLOCK, FRACTION, ISO, HOST, FACILITY, LEVEL, TAG, PID, MESSAGE, FIELDS };
enum { OTHER = 0, BSD = 1, RFC5424 = 2 };

typedef struct {
    int32_t start; /* into the data buffer (whose offsets are int32) */
    int32_t length; /* -1: null */
} Span;

typedef struct {
    const char *text;
    size_t length;
} Word;
#define WORD(text) {text, sizeof text - 1}

static const Word MONTHS[] = {WORD("Jan"), WORD("Feb"), WORD("Mar"), WORD("Apr"), WORD("May"), WORD("Jun"),
                              WORD("Jul"), WORD("Aug"), WORD("Sep"), WORD("Oct"), WORD("Nov"), WORD("Dec")};
static const Word FACILITIES[] = {
    WORD("kern"), WORD("user"), WORD("mail"), WORD("daemon"), WORD("auth"), WORD("syslog"), WORD("lpr"),
    WORD("news"), WORD("uucp"), WORD("cron"), WORD("authpriv"), WORD("ftp"), WORD("ntp"), WORD("security"),
    WORD("console"), WORD("local0"), WORD("local1"), WORD("local2"), WORD("local3"), WORD("local4"),
    WORD("local5"), WORD("local6"), WORD("local7")};
static const Word LEVELS[] = {WORD("emerg"), WORD("panic"), WORD("alert"), WORD("crit"), WORD("err"),
                              WORD("error"), WORD("warning"), WORD("warn"), WORD("notice"), WORD("info"),
                              WORD("debug")};

static inline int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static size_t digits_from(const uint8_t *s, size_t p, size_t end) {
    size_t q = p;
    while (q < end && is_digit(s[q])) q++;
    return q - p;
}

/* `[0-9]{count}` at p, then `separator` (0: none) */
static int fixed_digits(const uint8_t *s, size_t *p, size_t end, size_t count, uint8_t separator) {
    if (end - *p < count + (separator != 0)) return 0;
    for (size_t i = 0; i < count; i++)
        if (!is_digit(s[*p + i])) return 0;
    *p += count;
    if (separator) {
        if (s[*p] != separator) return 0;
        *p += 1;
    }
    return 1;
}

static int word_in(const uint8_t *s, size_t length, const Word *words, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (words[i].length == length && memcmp(s, words[i].text, length) == 0) return 1;
    return 0;
}

/* RFC5424_SHAPE: ^<[0-9]{1,3}>[0-9]{1,2} [^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ]+ [^ ] */
static int rfc5424_shape(const uint8_t *s, size_t n) {
    if (n == 0 || s[0] != '<') return 0;
    size_t p = 1, k = digits_from(s, p, n);
    if (k < 1 || k > 3) return 0;
    p += k;
    if (p >= n || s[p] != '>') return 0;
    p++;
    k = digits_from(s, p, n);
    if (k < 1 || k > 2) return 0;
    p += k;
    if (p >= n || s[p] != ' ') return 0;
    p++;
    for (int token = 0; token < 5; token++) {
        size_t start = p;
        while (p < n && s[p] != ' ') p++;
        if (p == start || p >= n) return 0;
        p++;
    }
    return p < n && s[p] != ' ';
}

static inline void set(Span f[], int field, size_t start, size_t end) {
    f[field].start = (int32_t)start;
    f[field].length = (int32_t)(end - start);
}

/* `TAG PID $` of BSD_HEAD at p: (?P<tag>[^ \[\]:]+)(?:\[(?P<pid>[^\]]*)\])?$ */
static int tag_and_pid(const uint8_t *s, size_t p, size_t n, Span f[]) {
    size_t q = p;
    while (q < n && s[q] != ' ' && s[q] != '[' && s[q] != ']' && s[q] != ':') q++;
    if (q == p) return 0;
    if (q == n) {
        set(f, TAG, p, q);
        f[PID].length = -1;
        return 1;
    }
    if (s[q] != '[') return 0;
    size_t r = q + 1;
    while (r < n && s[r] != ']') r++;
    if (r != n - 1) return 0; /* no ']', or text after the first one */
    set(f, TAG, p, q);
    set(f, PID, q + 1, r);
    return 1;
}

/* BSD_HEAD on s[0:n]; fills the spans of the fields it finds (relative to s) and returns 1 on a match. */
static int bsd_head(const uint8_t *s, size_t n, Span f[]) {
    size_t p = 0;
    if (n > 0 && s[0] == '<') { /* (?:<(?P<pri>[0-9]{1,3})> ?)? : nothing else can start with '<' */
        size_t k = digits_from(s, 1, n);
        if (k < 1 || k > 3 || 1 + k >= n || s[1 + k] != '>') return 0;
        set(f, PRI, 1, 1 + k);
        p = 2 + k;
        if (p < n && s[p] == ' ') p++;
    }
    if (p < n && !is_digit(s[p])) { /* Mmm +dd hh:mm:ss(.f{1,9})? */
        if (n - p < 3 || !word_in(s + p, 3, MONTHS, 12)) return 0;
        set(f, MONTH, p, p + 3);
        p += 3;
        if (p >= n || s[p] != ' ') return 0;
        while (p < n && s[p] == ' ') p++;
        size_t k = digits_from(s, p, n);
        if (k < 1 || k > 2) return 0;
        set(f, DAY, p, p + k);
        p += k;
        if (p >= n || s[p] != ' ') return 0;
        p++;
        size_t clock = p;
        if (!fixed_digits(s, &p, n, 2, ':') || !fixed_digits(s, &p, n, 2, ':') || !fixed_digits(s, &p, n, 2, 0))
            return 0;
        set(f, CLOCK, clock, p);
        if (p < n && s[p] == '.') {
            k = digits_from(s, p + 1, n);
            if (k < 1 || k > 9) return 0;
            set(f, FRACTION, p, p + 1 + k);
            p += 1 + k;
        }
    } else { /* ISO 8601: dddd-dd-ddTdd:dd:dd(.f{1,9})?(Z|[+-]dd:?dd)? */
        size_t iso = p;
        if (!fixed_digits(s, &p, n, 4, '-') || !fixed_digits(s, &p, n, 2, '-') || !fixed_digits(s, &p, n, 2, 'T') ||
            !fixed_digits(s, &p, n, 2, ':') || !fixed_digits(s, &p, n, 2, ':') || !fixed_digits(s, &p, n, 2, 0))
            return 0;
        if (p < n && s[p] == '.') {
            size_t k = digits_from(s, p + 1, n);
            if (k < 1 || k > 9) return 0;
            p += 1 + k;
        }
        if (p < n && s[p] == 'Z') {
            p++;
        } else if (p < n && (s[p] == '+' || s[p] == '-')) {
            p++;
            if (!fixed_digits(s, &p, n, 2, 0)) return 0;
            if (p < n && s[p] == ':') p++;
            if (!fixed_digits(s, &p, n, 2, 0)) return 0;
        }
        set(f, ISO, iso, p);
    }
    /* ` +(?P<host>[^ ]+) +` */
    if (p >= n || s[p] != ' ') return 0;
    while (p < n && s[p] == ' ') p++;
    size_t host = p;
    while (p < n && s[p] != ' ') p++;
    if (p == host || p >= n) return 0;
    set(f, HOST, host, p);
    while (p < n && s[p] == ' ') p++;
    /* (?:(?P<facility>...)\.(?P<level>...) +)? taken when the rest matches after it, else left out */
    size_t dot = p;
    while (dot < n && s[dot] != '.' && s[dot] != ' ') dot++;
    if (dot < n && s[dot] == '.' && word_in(s + p, dot - p, FACILITIES, sizeof FACILITIES / sizeof *FACILITIES)) {
        size_t end = dot + 1;
        while (end < n && s[end] != ' ') end++;
        if (end < n && word_in(s + dot + 1, end - dot - 1, LEVELS, sizeof LEVELS / sizeof *LEVELS)) {
            size_t tag = end;
            while (tag < n && s[tag] == ' ') tag++;
            if (tag_and_pid(s, tag, n, f)) {
                set(f, FACILITY, p, dot);
                set(f, LEVEL, dot + 1, end);
                return 1;
            }
        }
    }
    return tag_and_pid(s, p, n, f);
}

static int32_t offset_at(const Py_buffer *offsets, Py_ssize_t index) {
    int32_t value;
    memcpy(&value, (const char *)offsets->buf + index * 4, 4);
    return value;
}

/* One field's Arrow string array from its spans (one a line, contiguous). */
static PyObject *field_array(const Span *spans, int64_t total, Py_ssize_t nulls, const uint8_t *data,
                             Py_ssize_t length) {
    if (total > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a header field's text exceeds one string array");
        return NULL;
    }
    PyObject *validity = PyBytes_FromStringAndSize(NULL, (length + 7) / 8);
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    PyObject *text = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    PyObject *result = NULL;
    if (validity == NULL || offsets == NULL || text == NULL) goto done;
    uint8_t *bits = (uint8_t *)PyBytes_AS_STRING(validity);
    int32_t *positions = (int32_t *)PyBytes_AS_STRING(offsets);
    char *out = PyBytes_AS_STRING(text);
    memset(bits, 0, (size_t)((length + 7) / 8));
    int32_t position = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        positions[i] = position;
        if (spans[i].length >= 0) {
            bits[i / 8] |= (uint8_t)(1u << (i % 8));
            memcpy(out + position, data + spans[i].start, (size_t)spans[i].length);
            position += spans[i].length;
        }
    }
    positions[length] = position;
    result = Py_BuildValue("(OOOn)", validity, offsets, text, nulls);
done:
    Py_XDECREF(validity);
    Py_XDECREF(offsets);
    Py_XDECREF(text);
    return result;
}

static PyObject *py_split_bsd(PyObject *module, PyObject *args) {
    (void)module;
    Py_buffer offsets, data;
    Py_ssize_t offset, length;
    if (!PyArg_ParseTuple(args, "y*y*nn", &offsets, &data, &offset, &length)) return NULL;
    PyObject *result = NULL, *status = NULL, *fields = NULL;
    Span *spans = NULL;
    if (offset < 0 || length < 0 || offset > PY_SSIZE_T_MAX / 4 - length - 1 ||
        (offset + length + 1) * 4 > offsets.len) {
        PyErr_SetString(PyExc_ValueError, "the offsets buffer is shorter than offset + length + 1 entries");
        goto done;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        int32_t start = offset_at(&offsets, offset + i), end = offset_at(&offsets, offset + i + 1);
        if (start < 0 || end < start || end > data.len) {
            PyErr_Format(PyExc_ValueError, "line %zd lies outside the data buffer", i);
            goto done;
        }
    }
    spans = malloc(sizeof(Span) * FIELDS * (size_t)(length ? length : 1));
    status = PyBytes_FromStringAndSize(NULL, length);
    if (spans == NULL || status == NULL) {
        if (spans == NULL) PyErr_NoMemory();
        goto done;
    }
    uint8_t *kinds = (uint8_t *)PyBytes_AS_STRING(status);
    const uint8_t *bytes = data.buf;
    int64_t totals[FIELDS] = {0};
    Py_ssize_t nulls[FIELDS] = {0};
    for (Py_ssize_t i = 0; i < length; i++) {
        size_t start = (size_t)offset_at(&offsets, offset + i), end = (size_t)offset_at(&offsets, offset + i + 1);
        const uint8_t *line = bytes + start;
        size_t n = end - start;
        Span f[FIELDS];
        for (int field = 0; field < FIELDS; field++) f[field].length = -1;
        kinds[i] = OTHER;
        if (rfc5424_shape(line, n)) {
            kinds[i] = RFC5424;
        } else {
            size_t head = n, message = n;
            const uint8_t *colon = line;
            while ((colon = memchr(colon, ':', (size_t)(line + n - colon))) != NULL && colon + 1 < line + n) {
                if (colon[1] == ' ') {
                    head = (size_t)(colon - line);
                    message = head + 2;
                    break;
                }
                colon++;
            }
            if (bsd_head(line, head, f)) {
                kinds[i] = BSD;
                set(f, MESSAGE, message, n);
            } else {
                for (int field = 0; field < FIELDS; field++) f[field].length = -1;
            }
        }
        for (int field = 0; field < FIELDS; field++) {
            Span *out = &spans[(size_t)field * (size_t)length + (size_t)i];
            if (f[field].length == 0 && field != MESSAGE) f[field].length = -1; /* an empty group is null */
            out->length = f[field].length;
            if (f[field].length < 0) {
                nulls[field]++;
            } else {
                out->start = f[field].start + (int32_t)start;
                totals[field] += f[field].length;
            }
        }
    }
    fields = PyTuple_New(FIELDS);
    if (fields == NULL) goto done;
    for (int field = 0; field < FIELDS; field++) {
        PyObject *array = field_array(spans + (size_t)field * (size_t)length, totals[field], nulls[field], bytes,
                                      length);
        if (array == NULL) goto done;
        PyTuple_SET_ITEM(fields, field, array);
    }
    result = PyTuple_Pack(2, status, fields);
done:
    free(spans);
    Py_XDECREF(status);
    Py_XDECREF(fields);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef METHODS[] = {
    {"split_bsd", py_split_bsd, METH_VARARGS,
     "split_bsd(offsets, data, offset, length) -> (status, fields): each line's form (2 RFC 5424 shape, "
     "1 common BSD shape, 0 other) and the BSD header fields as Arrow string array buffers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "collectors._syslog_header", NULL, 0, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__syslog_header(void) { return PyModule_Create(&MODULE); }
