/* collectors._auth: the authentication rules of collectors/auth.py, matched in one pass over a batch.

   `match` reads the program and message columns (Arrow string arrays: validity, int32 offsets and data
   buffers, with the array's offset and length) and returns, per row, the number of the first rule of
   `collectors.auth.RULES` that matches (null: none) and the six capture groups of that rule (`user`,
   `address`, `port`, `method`, `signature`, `other`; null when the group is absent or empty, which is what
   the pure path makes of an empty capture). Each rule below is the RE2 pattern of its Python twin spelt
   out by hand with the same leftmost-first choices (greedy options tried first, lazy runs shortest first),
   and with the same cheap pre-tests (program family, first word, literal). Work per row is linear in its
   length: every scan either moves forward or is bounded by a constant literal, and the patterns whose
   backtracking could repeat a scan are given up (the row handed back) past a fixed count.

   A row the code does not decide is handed back in the `fallback` bitmap: a message holding a byte outside
   printable ASCII (RE2's UTF-8 classes, `.` and `\s` then differ from bytes), and the sudo COMMAND shape
   with more than a few ` ; ` separators. The caller runs the pure path on those rows. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { G_USER, G_ADDRESS, G_PORT, G_METHOD, G_SIGNATURE, G_OTHER, G_COUNT };
enum { P_ANY, P_SSHD, P_DROPBEAR, P_SU, P_SUDO, P_LOGIN, P_CHKPWD, P_OTHER };

#define NPOS ((size_t)-1)
#define UNDECIDED (-1)

typedef struct {
    const char *t;
    size_t n;
    size_t s[G_COUNT], e[G_COUNT]; /* s == NPOS: not set */
} Text;

static int at(const Text *x, size_t p, const char *lit, size_t len) {
    return p <= x->n && x->n - p >= len && memcmp(x->t + p, lit, len) == 0;
}

#define AT(p, s) at(x, (p), (s), sizeof(s) - 1)
/* Advance the local `p` past the literal, or fail the rule. */
#define LIT(s) do { if (!AT(p, s)) return 0; p += sizeof(s) - 1; } while (0)

/* memmem: glibc (Python.h defines _GNU_SOURCE), musl, the BSDs and macOS declare it in string.h */
static size_t find(const Text *x, size_t from, const char *lit, size_t len) {
    if (from > x->n) return NPOS;
    const char *hit = memmem(x->t + from, x->n - from, lit, len);
    return hit == NULL ? NPOS : (size_t)(hit - x->t);
}

#define FIND(from, s) find(x, (from), (s), sizeof(s) - 1)

static size_t run_not(const Text *x, size_t p, char stop) {
    while (p < x->n && x->t[p] != stop) p++;
    return p;
}

static size_t run_not2(const Text *x, size_t p, char a, char b) {
    while (p < x->n && x->t[p] != a && x->t[p] != b) p++;
    return p;
}

static size_t run_nosp(const Text *x, size_t p) { return run_not(x, p, ' '); }

static size_t run_char(const Text *x, size_t p, char c) {
    while (p < x->n && x->t[p] == c) p++;
    return p;
}

static size_t run_digits(const Text *x, size_t p) {
    while (p < x->n && x->t[p] >= '0' && x->t[p] <= '9') p++;
    return p;
}

static void set(Text *x, int g, size_t s, size_t e) { x->s[g] = s; x->e[g] = e; }
static void unset(Text *x, int g) { x->s[g] = NPOS; x->e[g] = NPOS; }

static void clear(Text *x) {
    for (int g = 0; g < G_COUNT; g++) unset(x, g);
}

/* (?: port (?P<port>[0-9]+))? with nothing required after it */
static void opt_port(Text *x, size_t p) {
    if (AT(p, " port ")) {
        size_t d = run_digits(x, p + 6);
        if (d > p + 6) set(x, G_PORT, p + 6, d);
    }
}

/* (?:: (?P<signature>.+))?$ */
static int signature_end(Text *x, size_t p) {
    if (AT(p, ": ") && p + 2 < x->n) { set(x, G_SIGNATURE, p + 2, x->n); return 1; }
    return p == x->n;
}

/* (?P<address>[^ ]+) port (?P<port>[0-9]+)(?: ssh[12])?(?:: (?P<signature>.+))?$ */
static int login_tail(Text *x, size_t a) {
    size_t e = run_nosp(x, a), p;
    if (e == a) return 0;
    p = e;
    LIT(" port ");
    size_t d = run_digits(x, p);
    if (d == p) return 0;
    int ok = 0;
    if (AT(d, " ssh") && d + 4 < x->n && (x->t[d + 4] == '1' || x->t[d + 4] == '2')) ok = signature_end(x, d + 5);
    if (!ok) ok = signature_end(x, d);
    if (!ok) return 0;
    set(x, G_ADDRESS, a, e);
    set(x, G_PORT, p, d);
    return 1;
}

/* (?P<user>.*?) from <login_tail>: the first ` from ` after which the tail matches */
static int lazy_user_login(Text *x, size_t u) {
    for (size_t q = u; (q = FIND(q, " from ")) != NPOS; q++) {
        if (login_tail(x, q + 6)) { set(x, G_USER, u, q); return 1; }
    }
    return 0;
}

/* Failed/Accepted (?P<method>[^ ]+) for */
static size_t method_for(Text *x, size_t p) {
    size_t m = run_nosp(x, p);
    if (m == p || !AT(m, " for ")) return NPOS;
    set(x, G_METHOD, p, m);
    return m + 5;
}

static int r_failed(Text *x) {
    size_t p = 0;
    LIT("Failed ");
    size_t u = method_for(x, p);
    if (u == NPOS) return 0;
    if ((AT(u, "invalid user ") || AT(u, "illegal user ")) && lazy_user_login(x, u + 13)) return 1;
    return lazy_user_login(x, u);
}

static int r_accepted(Text *x) {
    size_t p = 0;
    LIT("Accepted ");
    size_t u = method_for(x, p);
    return u != NPOS && lazy_user_login(x, u);
}

/* (?P<address>[^ ]+)(?: port (?P<port>[0-9]+))?$ */
static int address_port_end(Text *x, size_t a) {
    size_t e = run_nosp(x, a);
    if (e == a) return 0;
    if (e == x->n) { set(x, G_ADDRESS, a, e); return 1; }
    if (AT(e, " port ")) {
        size_t d = run_digits(x, e + 6);
        if (d > e + 6 && d == x->n) { set(x, G_ADDRESS, a, e); set(x, G_PORT, e + 6, d); return 1; }
    }
    return 0;
}

static int invalid_user(Text *x, size_t u) {
    for (size_t q = u; (q = FIND(q, " from ")) != NPOS; q++) {
        if (address_port_end(x, q + 6)) { set(x, G_USER, u, q); return 1; }
    }
    return 0;
}

static int r_invalid(Text *x) { size_t p = 0; LIT("Invalid user "); return invalid_user(x, p); }
static int r_illegal(Text *x) { size_t p = 0; LIT("Illegal user "); return invalid_user(x, p); }

static int r_received(Text *x) {
    size_t p = 0;
    LIT("Received disconnect from ");
    size_t e = run_nosp(x, p);
    if (e == p) return 0;
    /* (?P<address>[^ ]+?)(?: port (?P<port>[0-9]+))?: -- the shortest address followed by `:` or a port */
    const char *colon = e > p + 1 ? memchr(x->t + p + 1, ':', e - p - 1) : NULL;
    if (colon != NULL) { set(x, G_ADDRESS, p, (size_t)(colon - x->t)); return 1; }
    if (AT(e, " port ")) {
        size_t d = run_digits(x, e + 6);
        if (d > e + 6 && d < x->n && x->t[d] == ':') { set(x, G_ADDRESS, p, e); set(x, G_PORT, e + 6, d); return 1; }
    }
    return 0;
}

/* (?:invalid|authenticating) user */
static size_t invalid_or_authenticating(Text *x, size_t p) {
    if (AT(p, "invalid")) p += 7;
    else if (AT(p, "authenticating")) p += 14;
    else return NPOS;
    return AT(p, " user ") ? p + 6 : NPOS;
}

/* ^{phrase} (?:invalid|authenticating) user (?P<user>[^ ]*) (?P<address>[^ ]+)(?: port (?P<port>[0-9]+))? */
static int closed_user(Text *x, const char *phrase, size_t len) {
    if (!at(x, 0, phrase, len)) return 0;
    size_t u = invalid_or_authenticating(x, len);
    if (u == NPOS) return 0;
    size_t ue = run_nosp(x, u), p = ue;
    LIT(" ");
    size_t e = run_nosp(x, p);
    if (e == p) return 0;
    set(x, G_USER, u, ue);
    set(x, G_ADDRESS, p, e);
    opt_port(x, e);
    return 1;
}

/* ^{phrase} (?:user (?P<user>[^ ]+) )?(?P<address>[^ ]+)(?: port (?P<port>[0-9]+))? */
static int closed(Text *x, const char *phrase, size_t len) {
    if (!at(x, 0, phrase, len)) return 0;
    size_t p = len;
    if (AT(p, "user ")) {
        size_t u = p + 5, ue = run_nosp(x, u);
        if (ue > u && AT(ue, " ")) {
            size_t a = ue + 1, e = run_nosp(x, a);
            if (e > a) { set(x, G_USER, u, ue); set(x, G_ADDRESS, a, e); opt_port(x, e); return 1; }
        }
    }
    size_t e = run_nosp(x, p);
    if (e == p) return 0;
    set(x, G_ADDRESS, p, e);
    opt_port(x, e);
    return 1;
}

#define PHRASE(s) s " ", sizeof(s)
static int r_disconnected_user(Text *x) { return closed_user(x, PHRASE("Disconnected from")); }
static int r_closed_user(Text *x) { return closed_user(x, PHRASE("Connection closed by")); }
static int r_reset_user(Text *x) { return closed_user(x, PHRASE("Connection reset by")); }
static int r_disconnected(Text *x) { return closed(x, PHRASE("Disconnected from")); }
static int r_closed(Text *x) { return closed(x, PHRASE("Connection closed by")); }
static int r_reset(Text *x) { return closed(x, PHRASE("Connection reset by")); }

/* (?P<address>[^ ]+)(?: port (?P<port>[0-9]+))?: -- greedy address: a port then `:`, else the last `:` */
static int address_port_colon(Text *x, size_t a) {
    size_t e = run_nosp(x, a);
    if (e == a) return 0;
    if (AT(e, " port ")) {
        size_t d = run_digits(x, e + 6);
        if (d > e + 6 && d < x->n && x->t[d] == ':') { set(x, G_ADDRESS, a, e); set(x, G_PORT, e + 6, d); return 1; }
    }
    for (size_t c = e - 1; c > a; c--) {
        if (x->t[c] == ':') { set(x, G_ADDRESS, a, c); return 1; }
    }
    return 0;
}

static int r_disconnecting_user(Text *x) {
    size_t p = 0;
    LIT("Disconnecting ");
    size_t u = invalid_or_authenticating(x, p);
    if (u == NPOS) return 0;
    size_t ue = run_nosp(x, u);
    if (ue == u || !AT(ue, " ") || !address_port_colon(x, ue + 1)) return 0;
    set(x, G_USER, u, ue);
    return 1;
}

static int r_too_many(Text *x) {
    size_t p = 0;
    LIT("Disconnecting: Too many authentication failures");
    if (AT(p, " for ")) {
        size_t q = p + 5;
        if (AT(q, "invalid user ")) {
            size_t ue = run_nosp(x, q + 13);
            if (ue > q + 13) { set(x, G_USER, q + 13, ue); return 1; }
        }
        size_t ue = run_nosp(x, q);
        if (ue > q) set(x, G_USER, q, ue);
    }
    return 1;
}

static int r_disconnecting(Text *x) {
    size_t p = 0;
    LIT("Disconnecting");
    if (AT(p, " user ")) {
        size_t u = p + 6, ue = run_nosp(x, u);
        if (ue > u && AT(ue, " ") && address_port_colon(x, ue + 1)) { set(x, G_USER, u, ue); return 1; }
    }
    return AT(p, " ") && address_port_colon(x, p + 1);
}

static int r_did_not_receive(Text *x) {
    size_t p = 0;
    LIT("Did not receive identification string from ");
    size_t e = run_nosp(x, p);
    if (e == p) return 0;
    set(x, G_ADDRESS, p, e);
    opt_port(x, e);
    return 1;
}

/* (?P<user>[^ ]+) from (?P<address>[^ ]+), then a port (`port`), or the end (`end`) */
static int user_from(Text *x, size_t u, int end) {
    size_t ue = run_nosp(x, u);
    if (ue == u || !AT(ue, " from ")) return 0;
    size_t a = ue + 6, e = run_nosp(x, a);
    if (e == a || (end && e != x->n)) return 0;
    set(x, G_USER, u, ue);
    set(x, G_ADDRESS, a, e);
    if (!end) opt_port(x, e);
    return 1;
}

static int r_max_attempts(Text *x) {
    size_t p = 0;
    LIT("error: maximum authentication attempts exceeded for ");
    if (AT(p, "invalid user ") && user_from(x, p + 13, 0)) return 1;
    return user_from(x, p, 0);
}

static int r_pam_error(Text *x) {
    size_t p = 0;
    LIT("error: PAM: ");
    if (p < x->n && (x->t[p] == 'A' || x->t[p] == 'a')) p++;
    else return 0;
    LIT("uthentication ");
    if (AT(p, "failure")) p += 7;
    else if (AT(p, "error")) p += 5;
    else return 0;
    LIT(" for ");
    if ((AT(p, "illegal user ") || AT(p, "invalid user ")) && user_from(x, p + 13, 1)) return 1;
    return user_from(x, p, 1);
}

static int r_not_allowed(Text *x) {
    size_t p = 0;
    LIT("User ");
    size_t ue = run_nosp(x, p);
    if (ue == p || !AT(ue, " from ")) return 0;
    size_t a = ue + 6, e = run_nosp(x, a);
    if (e == a || !AT(e, " not allowed because")) return 0;
    set(x, G_USER, p, ue);
    set(x, G_ADDRESS, a, e);
    return 1;
}

static int r_userauth_request(Text *x) {
    size_t p = 0;
    LIT("input_userauth_request: ");
    if (AT(p, "invalid")) p += 7;
    else if (AT(p, "illegal")) p += 7;
    else return 0;
    LIT(" user ");
    set(x, G_USER, p, run_nosp(x, p));
    return 1;
}

static int r_unable(Text *x) {
    size_t p = 0;
    LIT("Unable to negotiate with ");
    return address_port_colon(x, p);
}

static int r_reverse(Text *x) {
    size_t p = 0;
    LIT("reverse mapping checking getaddrinfo for ");
    size_t h = run_nosp(x, p);
    if (h == p) return 0;
    p = h;
    LIT(" [");
    size_t e = run_not(x, p, ']');
    if (e == p || !AT(e, "] failed")) return 0;
    set(x, G_ADDRESS, p, e);
    return 1;
}

/* (?P<address>[^ ]+):(?P<port>[0-9]+)$: no space from `a` on, the last `:` followed by digits only */
static int address_colon_port_end(Text *x, size_t a) {
    if (a >= x->n || memchr(x->t + a, ' ', x->n - a) != NULL) return 0;
    size_t d = x->n;
    while (d > a && x->t[d - 1] >= '0' && x->t[d - 1] <= '9') d--;
    if (d == x->n || d < a + 2 || x->t[d - 1] != ':') return 0;
    set(x, G_ADDRESS, a, d - 1);
    set(x, G_PORT, d, x->n);
    return 1;
}

static int r_dropbear_bad(Text *x) {
    size_t p = 0;
    LIT("Bad password attempt for '");
    size_t ue = run_not(x, p, '\'');
    size_t u = p;
    p = ue;
    LIT("' from ");
    if (!address_colon_port_end(x, p)) return 0;
    set(x, G_USER, u, ue);
    return 1;
}

static int r_dropbear_nonexistent(Text *x) {
    size_t p = 0;
    LIT("Login attempt for nonexistent user");
    if (AT(p, " '")) {
        size_t u = p + 2, ue = run_not(x, u, '\'');
        if (AT(ue, "' from ") && address_colon_port_end(x, ue + 7)) { set(x, G_USER, u, ue); return 1; }
    }
    LIT(" from ");
    return address_colon_port_end(x, p);
}

static int r_dropbear_succeeded(Text *x) {
    size_t p = 0;
    if (AT(p, "Password")) p += 8;
    else if (AT(p, "Pubkey")) p += 6;
    else return 0;
    size_t m = p;
    LIT(" auth succeeded for '");
    size_t u = p, ue = run_not(x, u, '\'');
    p = ue;
    LIT("'");
    /* .*? from <address>:<port>$ -- the tail holds no space, so only the last ` from ` can be followed by it */
    size_t last = NPOS;
    for (size_t q = p; (q = FIND(q, " from ")) != NPOS; q++) last = q;
    if (last == NPOS || !address_colon_port_end(x, last + 6)) return 0;
    set(x, G_METHOD, 0, m);
    set(x, G_USER, u, ue);
    return 1;
}

/* `authentication failures?;` at `k`: the position after it, or NPOS */
static size_t failure_semicolon(const Text *x, size_t k) {
    size_t p = k + 22;
    if (AT(p, "s;")) return p + 2;
    if (AT(p, ";")) return p + 1;
    return NPOS;
}

/* `[^ ]*` fields named in the PAM line, in order */
static int pam_strict_at(Text *x, size_t k) {
    size_t p = failure_semicolon(x, k);
    if (p == NPOS) return 0;
    LIT(" logname=");
    p = run_nosp(x, p);
    LIT(" uid=");
    p = run_nosp(x, p);
    LIT(" euid=");
    p = run_nosp(x, p);
    LIT(" tty=");
    p = run_nosp(x, p);
    LIT(" ruser=");
    size_t o = p, oe = run_nosp(x, p);
    p = oe;
    LIT(" rhost=");
    size_t a = p, ae = run_nosp(x, p);
    set(x, G_OTHER, o, oe);
    set(x, G_ADDRESS, a, ae);
    size_t s = run_char(x, ae, ' ');
    if (s > ae && AT(s, "user=")) set(x, G_USER, s + 5, run_nosp(x, s + 5));
    return 1;
}

static int r_pam_strict(Text *x) {
    for (size_t k = 0; (k = FIND(k, "authentication failure")) != NPOS; k++) {
        if (pam_strict_at(x, k)) return 1;
    }
    return 0;
}

static int r_pam_loose(Text *x) {
    for (size_t k = 0; (k = FIND(k, "authentication failure")) != NPOS; k++) {
        size_t p = failure_semicolon(x, k);
        if (p == NPOS) continue;
        size_t r = FIND(p, "rhost=");  /* a later start has no later `rhost=` either */
        if (r == NPOS) return 0;
        size_t a = r + 6, ae = run_nosp(x, a);
        set(x, G_ADDRESS, a, ae);
        size_t s = run_char(x, ae, ' ');
        if (s > ae && AT(s, "user=")) {
            size_t ue = run_nosp(x, s + 5);
            if (ue > s + 5) set(x, G_USER, s + 5, ue);
        }
        return 1;
    }
    return 0;
}

static int r_pam_authenticate(Text *x) { return FIND(0, "pam_authenticate: Authentication failure") != NPOS; }

static int r_session_opened(Text *x) {
    for (size_t k = 0; (k = FIND(k, "session opened for user ")) != NPOS; k++) {
        size_t u = k + 24, ue = run_not2(x, u, ' ', '('), p = ue;
        if (ue == u) continue;
        set(x, G_USER, u, ue);
        if (AT(p, "(uid=")) {
            size_t d = run_digits(x, p + 5);
            if (d > p + 5 && AT(d, ")")) p = d + 1;
        }
        if (AT(p, " by ")) {
            size_t oe = run_not2(x, p + 4, ' ', '(');
            if (oe > p + 4) set(x, G_OTHER, p + 4, oe);
        }
        return 1;
    }
    return 0;
}

static int r_session_closed(Text *x) {
    for (size_t k = 0; (k = FIND(k, "session closed for user ")) != NPOS; k++) {
        size_t u = k + 24, ue = run_not2(x, u, ' ', '(');
        if (ue > u) { set(x, G_USER, u, ue); return 1; }
    }
    return 0;
}

/* (?P<user>[^)]*)\) (?P<other>[^ ]+) on  */
static int to_user_by_other_on(Text *x, size_t p) {
    size_t u = p, ue = run_not(x, p, ')');
    p = ue;
    LIT(") ");
    size_t o = p, oe = run_nosp(x, p);
    if (oe == o || !AT(oe, " on ")) return 0;
    set(x, G_USER, u, ue);
    set(x, G_OTHER, o, oe);
    return 1;
}

static int r_su_failed(Text *x) { size_t p = 0; LIT("FAILED SU (to "); return to_user_by_other_on(x, p); }
static int r_su_to(Text *x) { size_t p = 0; LIT("(to "); return to_user_by_other_on(x, p); }

/* (?P<first>[^ ]+) <middle> (?P<second>[^ ]+) */
static int two_words(Text *x, size_t p, int first, const char *middle, size_t len, int second) {
    size_t a = p, ae = run_nosp(x, p);
    if (ae == a || !at(x, ae, middle, len)) return 0;
    size_t b = ae + len, be = run_nosp(x, b);
    if (be == b) return 0;
    set(x, first, a, ae);
    set(x, second, b, be);
    return 1;
}

#define MIDDLE(s) s, sizeof(s) - 1
static int r_su_failed_for(Text *x) {
    size_t p = 0;
    LIT("FAILED su for ");
    return two_words(x, p, G_USER, MIDDLE(" by "), G_OTHER);
}

static int r_su_bad(Text *x) {
    size_t p = 0;
    LIT("BAD SU ");
    return two_words(x, p, G_OTHER, MIDDLE(" to "), G_USER);
}

static int r_su_successful(Text *x) {
    size_t p = 0;
    LIT("Successful su for ");
    return two_words(x, p, G_USER, MIDDLE(" by "), G_OTHER);
}

/* ^[-+] [^ ]+ (?P<other>[^ :]+):(?P<user>[^ ]+)$ */
static int su_busybox(Text *x, char sign) {
    size_t p = 0;
    if (x->n < 2 || x->t[0] != sign || x->t[1] != ' ') return 0;
    p = 2;
    size_t h = run_nosp(x, p);
    if (h == p) return 0;
    p = h;
    LIT(" ");
    size_t o = p, oe = run_not2(x, p, ' ', ':');
    if (oe == o) return 0;
    p = oe;
    LIT(":");
    size_t ue = run_nosp(x, p);
    if (ue == p || ue != x->n) return 0;
    set(x, G_OTHER, o, oe);
    set(x, G_USER, p, ue);
    return 1;
}

static int r_su_busybox_failed(Text *x) { return su_busybox(x, '-'); }
static int r_su_busybox_success(Text *x) { return su_busybox(x, '+'); }

/* PWD=.*? ; USER=(?P<other>[^ ]+) ; -- the first ` ; USER=` followed by a name and ` ;` */
static size_t sudo_pwd_user(Text *x, size_t p) {
    LIT("PWD=");
    for (size_t q = p; (q = FIND(q, " ; USER=")) != NPOS; q++) {
        size_t o = q + 8, oe = run_nosp(x, o);
        if (oe > o && AT(oe, " ;")) { set(x, G_OTHER, o, oe); return oe + 2; }
    }
    return 0;
}

/* ` ; (?:TTY=[^ ]* ; )?PWD=.*? ; USER=(?P<other>[^ ]+) ;` */
static int sudo_tail(Text *x, size_t p) {
    LIT(" ; ");
    if (AT(p, "TTY=")) {
        size_t q = run_nosp(x, p + 4);
        if (AT(q, " ; ") && sudo_pwd_user(x, q + 3)) return 1;
    }
    return sudo_pwd_user(x, p) != 0;
}

/* ^ *(?P<user>[^ ]+) : */
static size_t sudo_user(Text *x) {
    size_t u = run_char(x, 0, ' '), ue = run_nosp(x, u);
    if (ue == u || !AT(ue, " : ")) return NPOS;
    set(x, G_USER, u, ue);
    return ue + 3;
}

static int r_sudo_incorrect(Text *x) {
    size_t p = sudo_user(x);
    if (p == NPOS) return 0;
    size_t d = run_digits(x, p);
    if (d == p) return 0;
    p = d;
    LIT(" incorrect password attempt");
    if (AT(p, "s")) p++;
    return sudo_tail(x, p);
}

static int r_sudo_required(Text *x) {
    size_t p = sudo_user(x);
    if (p == NPOS) return 0;
    LIT("a password is required");
    return sudo_tail(x, p);
}

static int r_sudo_denied(Text *x) {
    size_t p = sudo_user(x);
    if (p == NPOS) return 0;
    if (AT(p, "user NOT in sudoers")) p += 19;
    else if (AT(p, "user NOT authorized on host")) p += 27;
    else if (AT(p, "command not allowed")) p += 19;
    else return 0;
    return sudo_tail(x, p);
}

/* PWD=.*? ; USER=(?P<other>[^ ]+) ; .*COMMAND= -- the first ` ; USER=` followed by a name and ` ; ` decides:
   a later one ends later, so no `COMMAND=` after the first means none after it either */
static int sudo_pwd_user_command(Text *x, size_t p, size_t last_command) {
    LIT("PWD=");
    for (size_t q = p; (q = FIND(q, " ; USER=")) != NPOS; q++) {
        size_t o = q + 8, oe = run_nosp(x, o);
        if (oe > o && AT(oe, " ; ")) {
            if (last_command == NPOS || last_command < oe + 3) return 0;
            set(x, G_OTHER, o, oe);
            return 1;
        }
    }
    return 0;
}

/* (?:TTY=[^ ]* ; )?PWD=.*? ; USER=(?P<other>[^ ]+) ; .*COMMAND= */
static int sudo_command_rest(Text *x, size_t p, size_t last_command) {
    if (AT(p, "TTY=")) {
        size_t q = run_nosp(x, p + 4);
        if (AT(q, " ; ") && sudo_pwd_user_command(x, q + 3, last_command)) return 1;
    }
    return sudo_pwd_user_command(x, p, last_command);
}

#define SUDO_SEPARATORS 16

static int r_sudo_command(Text *x) {
    size_t p = sudo_user(x);
    if (p == NPOS) return 0;
    /* `(?:.+? ; )?` tries every ` ; ` after the first character: bounded, else the row is handed back */
    size_t count = 0, last_command = NPOS;
    for (size_t q = p; (q = FIND(q, " ; ")) != NPOS; q++) {
        if (++count > SUDO_SEPARATORS) return UNDECIDED;
    }
    for (size_t q = 0; (q = FIND(q, "COMMAND=")) != NPOS; q++) last_command = q;
    for (size_t q = p + 1; (q = FIND(q, " ; ")) != NPOS; q++) {
        if (sudo_command_rest(x, q + 3, last_command)) return 1;
    }
    return sudo_command_rest(x, p, last_command);
}

static int r_login_failed_from(Text *x) {
    size_t p = 0;
    LIT("FAILED LOGIN ");
    if (AT(p, "SESSION ")) p += 8;
    else {
        size_t d = run_digits(x, p);
        if (d == p) return 0;
        p = d;
        LIT(" ");
    }
    LIT("FROM ");
    size_t a = p, ae = run_nosp(x, p);
    if (ae == a) return 0;
    p = ae;
    LIT(" FOR ");
    size_t u = p, ue = run_not(x, p, ',');
    if (ue == u || ue == x->n) return 0;
    set(x, G_ADDRESS, a, ae);
    set(x, G_USER, u, ue);
    return 1;
}

/* '(?P<user>[^']*)' after ` FOR ` */
static int quoted_user_for(Text *x, size_t p) {
    LIT(" FOR '");
    size_t ue = run_not(x, p, '\'');
    if (ue == x->n) return 0;
    set(x, G_USER, p, ue);
    return 1;
}

static int r_login_failed_on(Text *x) {
    size_t p = 0;
    LIT("FAILED LOGIN (");
    size_t d = run_digits(x, p);
    if (d == p) return 0;
    p = d;
    LIT(") on '");
    p = run_not(x, p, '\'');
    LIT("'");
    if (AT(p, " from '")) {
        size_t a = p + 7, ae = run_not(x, a, '\'');
        if (ae < x->n && quoted_user_for(x, ae + 1)) { set(x, G_ADDRESS, a, ae); return 1; }
    }
    return quoted_user_for(x, p);
}

static int r_login_too_many(Text *x) {
    size_t p = 0;
    LIT("TOO MANY LOGIN TRIES (");
    size_t d = run_digits(x, p);
    if (d == p) return 0;
    p = d;
    LIT(") ");
    size_t a = NPOS, ae = NPOS;
    if (AT(p, "FROM ")) {
        size_t s = p + 5, e = run_nosp(x, s);
        if (e > s && AT(e, " ")) { a = s; ae = e; p = e + 1; }
    }
    if (AT(p, "on '")) {
        size_t e = run_not(x, p + 4, '\'');
        if (AT(e, "' ")) p = e + 2;
    }
    LIT("FOR ");
    if (AT(p, "'")) p++;
    size_t u = p, ue = run_not2(x, p, ',', '\'');
    if (ue == u) return 0;
    p = ue;
    if (AT(p, "'")) p++;
    LIT(",");
    if (a != NPOS) set(x, G_ADDRESS, a, ae);
    set(x, G_USER, u, ue);
    return 1;
}

static int r_login_failures(Text *x) {
    size_t p = run_digits(x, 0);
    if (p == 0) return 0;
    LIT(" LOGIN FAILURE");
    if (AT(p, "S")) p++;
    LIT(" ");
    size_t a = NPOS, ae = NPOS;
    if (AT(p, "FROM ")) {
        a = p + 5;
        ae = run_not2(x, a, ' ', ',');
        if (ae == a) return 0;
        p = ae;
    } else if (AT(p, "ON ")) {
        size_t e = run_not2(x, p + 3, ' ', ',');
        if (e == p + 3) return 0;
        p = e;
    } else {
        return 0;
    }
    LIT(", ");
    size_t ue = run_nosp(x, p);
    if (ue == p || ue != x->n) return 0;
    if (a != NPOS) set(x, G_ADDRESS, a, ae);
    set(x, G_USER, p, ue);
    return 1;
}

static int r_login_invalid_password(Text *x) {
    size_t p = 0;
    LIT("invalid password for '");
    size_t u = p, ue = run_not(x, p, '\'');
    p = ue;
    LIT("'");
    set(x, G_USER, u, ue);
    if (AT(p, " on '")) {
        size_t e = run_not(x, p + 5, '\'');
        if (e < x->n) p = e + 1;
    }
    if (AT(p, " from '")) {
        size_t e = run_not(x, p + 7, '\'');
        if (e < x->n) set(x, G_ADDRESS, p + 7, e);
    }
    return 1;
}

static int r_login_on_by(Text *x) {
    size_t p = 0;
    LIT("LOGIN ON ");
    size_t h = run_nosp(x, p);
    if (h == p) return 0;
    p = h;
    LIT(" BY ");
    size_t ue = run_nosp(x, p);
    if (ue == p) return 0;
    set(x, G_USER, p, ue);
    if (AT(ue, " FROM ")) {
        size_t e = run_nosp(x, ue + 6);
        if (e > ue + 6) set(x, G_ADDRESS, ue + 6, e);
    }
    return 1;
}

static int r_login_on_as(Text *x) {
    size_t p = 0;
    LIT("login on ");
    size_t h = run_nosp(x, p);
    if (h == p) return 0;
    p = h;
    LIT(" as ");
    size_t ue = run_nosp(x, p);
    if (ue == p) return 0;
    set(x, G_USER, p, ue);
    return 1;
}

static int r_chkpwd(Text *x) {
    size_t p = 0;
    LIT("password check failed for user (");
    size_t ue = run_not(x, p, ')');
    if (ue == x->n) return 0;
    set(x, G_USER, p, ue);
    return 1;
}

/* The literals a rule without a first word needs in the message (looked for once a row) */
enum { L_NONE, L_AUTH_FAILURE, L_PAM_AUTHENTICATE, L_SESSION_OPENED, L_SESSION_CLOSED, L_INCORRECT, L_REQUIRED, L_NOT,
       L_COMMAND, L_LOGIN_FAILURE, LITERAL_COUNT };
static const char *const LITERALS[LITERAL_COUNT] = {
    "", "authentication failure", "pam_authenticate:", "session opened", "session closed",
    "incorrect password attempt", "a password is required", " NOT ", "COMMAND=", "LOGIN FAILURE",
};

typedef struct {
    int programs;
    const char *first;    /* the message's first word, or NULL */
    size_t first_length;
    int literal;          /* else a literal it must hold (L_NONE: none) */
    int (*match)(Text *);
} Rule;

#define FIRST(s) s, sizeof(s) - 1, L_NONE
#define HOLDS(literal) NULL, 0, literal

/* collectors.auth.RULES, in order (the test suite compares the two lists) */
static const Rule RULES[] = {
    {P_SSHD, FIRST("Failed"), r_failed},
    {P_SSHD, FIRST("Accepted"), r_accepted},
    {P_SSHD, FIRST("Invalid"), r_invalid},
    {P_SSHD, FIRST("Illegal"), r_illegal},
    {P_SSHD, FIRST("Received"), r_received},
    {P_SSHD, FIRST("Disconnected"), r_disconnected_user},
    {P_SSHD, FIRST("Connection"), r_closed_user},
    {P_SSHD, FIRST("Connection"), r_reset_user},
    {P_SSHD, FIRST("Disconnected"), r_disconnected},
    {P_SSHD, FIRST("Connection"), r_closed},
    {P_SSHD, FIRST("Connection"), r_reset},
    {P_SSHD, FIRST("Disconnecting"), r_disconnecting_user},
    {P_SSHD, FIRST("Disconnecting:"), r_too_many},
    {P_SSHD, FIRST("Disconnecting"), r_disconnecting},
    {P_SSHD, FIRST("Did"), r_did_not_receive},
    {P_SSHD, FIRST("error:"), r_max_attempts},
    {P_SSHD, FIRST("error:"), r_pam_error},
    {P_SSHD, FIRST("User"), r_not_allowed},
    {P_SSHD, FIRST("input_userauth_request:"), r_userauth_request},
    {P_SSHD, FIRST("Unable"), r_unable},
    {P_SSHD, FIRST("reverse"), r_reverse},
    {P_DROPBEAR, FIRST("Bad"), r_dropbear_bad},
    {P_DROPBEAR, FIRST("Login"), r_dropbear_nonexistent},
    {P_DROPBEAR, HOLDS(L_NONE), r_dropbear_succeeded},
    {P_ANY, HOLDS(L_AUTH_FAILURE), r_pam_strict},
    {P_ANY, HOLDS(L_AUTH_FAILURE), r_pam_loose},
    {P_ANY, HOLDS(L_PAM_AUTHENTICATE), r_pam_authenticate},
    {P_ANY, HOLDS(L_SESSION_OPENED), r_session_opened},
    {P_ANY, HOLDS(L_SESSION_CLOSED), r_session_closed},
    {P_SU, FIRST("FAILED"), r_su_failed},
    {P_SU, FIRST("FAILED"), r_su_failed_for},
    {P_SU, FIRST("BAD"), r_su_bad},
    {P_SU, FIRST("-"), r_su_busybox_failed},
    {P_SU, FIRST("+"), r_su_busybox_success},
    {P_SU, FIRST("(to"), r_su_to},
    {P_SU, FIRST("Successful"), r_su_successful},
    {P_SUDO, HOLDS(L_INCORRECT), r_sudo_incorrect},
    {P_SUDO, HOLDS(L_REQUIRED), r_sudo_required},
    {P_SUDO, HOLDS(L_NOT), r_sudo_denied},
    {P_SUDO, HOLDS(L_COMMAND), r_sudo_command},
    {P_LOGIN, FIRST("FAILED"), r_login_failed_from},
    {P_LOGIN, FIRST("FAILED"), r_login_failed_on},
    {P_LOGIN, FIRST("TOO"), r_login_too_many},
    {P_LOGIN, HOLDS(L_LOGIN_FAILURE), r_login_failures},
    {P_LOGIN, FIRST("invalid"), r_login_invalid_password},
    {P_LOGIN, FIRST("LOGIN"), r_login_on_by},
    {P_LOGIN, FIRST("login"), r_login_on_as},
    {P_CHKPWD, FIRST("password"), r_chkpwd},
};
#define RULE_COUNT ((int)(sizeof(RULES) / sizeof(RULES[0])))

static const char *const PROGRAM_NAMES[] = {"*", "sshd", "dropbear", "su", "sudo", "login", "unix_chkpwd"};

static int family_of(const char *p, size_t n) {
    if (n >= 4 && memcmp(p, "sshd", 4) == 0) return P_SSHD;
    for (int f = P_DROPBEAR; f <= P_CHKPWD; f++) {
        size_t len = strlen(PROGRAM_NAMES[f]);
        if (n == len && memcmp(p, PROGRAM_NAMES[f], len) == 0) return f;
    }
    return P_OTHER;
}

/* What collectors.auth._clean does to one message: ` [preauth]` dropped, `message repeated N times: [ X]`
   read as X (trimmed, as every `message repeated` message is); the result is a slice of the message. */
static void clean(Text *x) {
    const char *t = x->t;
    size_t n = x->n;
    if (n >= 10 && memcmp(t + n - 9, "[preauth]", 9) == 0 && t[n - 10] == ' ') {
        n -= 9;
        while (n > 0 && t[n - 1] == ' ') n--;
    }
    x->n = n;
    if (!AT(0, "message repeated ")) return;
    size_t p = 17, d = run_digits(x, p);
    if (d > p && at(x, d, " times: [", 9) && t[n - 1] == ']') {
        p = d + 9;
        if (t[p] == ' ') p++;
        x->t = t + p;
        x->n = n - 1 - p;
    }
    while (x->n > 0 && x->t[0] == ' ') { x->t++; x->n--; }
    while (x->n > 0 && x->t[x->n - 1] == ' ') x->n--;
}

static int printable_ascii(const char *t, size_t n) {
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {  /* eight bytes at a time: none >= 0x80, < 0x20 or 0x7f */
        uint64_t v;
        memcpy(&v, t + i, 8);
        uint64_t below = (v - ones * 0x20) & ~v, del = v ^ (ones * 0x7f);
        if ((v | below | ((del - ones) & ~del)) & highs) return 0;
    }
    for (; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c > 0x7e) return 0;
    }
    return 1;
}

/* The number of the first rule that matches, -1 for none, -2 when the row is handed back. */
static int match_row(Text *x, int family) {
    size_t w = run_char(x, 0, ' ');
    size_t we = run_nosp(x, w);
    signed char holds[LITERAL_COUNT];
    memset(holds, -1, sizeof holds);
    for (int r = 0; r < RULE_COUNT; r++) {
        const Rule *rule = &RULES[r];
        if (rule->programs != P_ANY && rule->programs != family) continue;
        if (rule->first != NULL) {
            if (we - w != rule->first_length || memcmp(x->t + w, rule->first, rule->first_length) != 0) continue;
        } else {
            if (holds[rule->literal] < 0)
                holds[rule->literal] = find(x, 0, LITERALS[rule->literal], strlen(LITERALS[rule->literal])) != NPOS;
            if (!holds[rule->literal]) continue;
        }
        clear(x);
        int result = rule->match(x);
        if (result == UNDECIDED) return -2;
        if (result) return r;
    }
    clear(x);
    return -1;
}

typedef struct {
    const uint8_t *validity; /* NULL: no nulls */
    const int32_t *offsets;
    const char *data;
    Py_ssize_t offset;
} StringColumn;

static int string_column(Py_buffer *validity, Py_buffer *offsets, Py_buffer *data, Py_ssize_t offset,
                         Py_ssize_t length, const char *name, StringColumn *out) {
    if (offset < 0 || length < 0 || offsets->len / 4 < offset + length + 1) {
        PyErr_Format(PyExc_ValueError, "%s: the offsets buffer holds fewer than offset + length + 1 values", name);
        return -1;
    }
    if (validity->buf != NULL && validity->len < (offset + length + 7) / 8) {
        PyErr_Format(PyExc_ValueError, "%s: the validity bitmap is shorter than offset + length bits", name);
        return -1;
    }
    out->validity = validity->buf;
    out->offsets = offsets->buf;
    out->data = data->buf;
    out->offset = offset;
    for (Py_ssize_t i = offset; i < offset + length; i++) {
        int32_t start = out->offsets[i], end = out->offsets[i + 1];
        if (start < 0 || end < start || end > data->len) {
            PyErr_Format(PyExc_ValueError, "%s: offsets %d..%d of row %zd lie outside the data buffer",
                         name, (int)start, (int)end, i - offset);
            return -1;
        }
    }
    return 0;
}

static int valid(const StringColumn *column, Py_ssize_t row) {
    Py_ssize_t i = column->offset + row;
    return column->validity == NULL || ((column->validity[i >> 3] >> (i & 7)) & 1);
}

static void set_bit(char *bitmap, Py_ssize_t i) { bitmap[i >> 3] |= (char)(1 << (i & 7)); }

static PyObject *new_zeroed_bytes(Py_ssize_t size) {
    PyObject *bytes = PyBytes_FromStringAndSize(NULL, size);
    if (bytes != NULL) memset(PyBytes_AS_STRING(bytes), 0, (size_t)size);
    return bytes;
}

/* One output string column from the captured spans (absolute positions into the message data). */
static PyObject *group_column(const int32_t *spans, int group, Py_ssize_t length, const char *data) {
    Py_ssize_t total = 0, nulls = 0;
    for (Py_ssize_t row = 0; row < length; row++) {
        const int32_t *span = spans + (row * G_COUNT + group) * 2;
        if (span[1] > span[0]) total += (Py_ssize_t)(span[1] - span[0]);
    }
    PyObject *validity = new_zeroed_bytes((length + 7) / 8);
    PyObject *offsets = PyBytes_FromStringAndSize(NULL, (length + 1) * 4);
    PyObject *values = PyBytes_FromStringAndSize(NULL, total);
    if (validity == NULL || offsets == NULL || values == NULL) {
        Py_XDECREF(validity);
        Py_XDECREF(offsets);
        Py_XDECREF(values);
        return NULL;
    }
    char *bits = PyBytes_AS_STRING(validity), *out = PyBytes_AS_STRING(values);
    int32_t *offset = (int32_t *)PyBytes_AS_STRING(offsets);
    int32_t position = 0;
    offset[0] = 0;
    for (Py_ssize_t row = 0; row < length; row++) {
        const int32_t *span = spans + (row * G_COUNT + group) * 2;
        if (span[1] > span[0]) {
            size_t size = (size_t)(span[1] - span[0]);
            memcpy(out + position, data + span[0], size);
            position += (int32_t)size;
            set_bit(bits, row);
        } else {
            nulls++;
        }
        offset[row + 1] = position;
    }
    return Py_BuildValue("(NNNn)", validity, offsets, values, nulls);
}

static PyObject *auth_match(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer pv, po, pd, mv, mo, md;
    Py_ssize_t p_offset, m_offset, length;
    if (!PyArg_ParseTuple(args, "z*y*y*nz*y*y*nn", &pv, &po, &pd, &p_offset, &mv, &mo, &md, &m_offset, &length))
        return NULL;
    PyObject *result = NULL, *rule_validity = NULL, *rule_values = NULL, *fallback = NULL, *groups = NULL;
    int32_t *spans = NULL;
    StringColumn programs, messages;
    if (string_column(&pv, &po, &pd, p_offset, length, "programs", &programs) < 0 ||
        string_column(&mv, &mo, &md, m_offset, length, "messages", &messages) < 0)
        goto done;
    spans = PyMem_Malloc(sizeof(int32_t) * 2 * G_COUNT * (size_t)(length ? length : 1));
    rule_validity = new_zeroed_bytes((length + 7) / 8);
    rule_values = new_zeroed_bytes(length * 8);
    fallback = new_zeroed_bytes((length + 7) / 8);
    if (spans == NULL || rule_validity == NULL || rule_values == NULL || fallback == NULL) {
        if (spans == NULL) PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t rule_nulls = 0, handed_back = 0;
    int64_t *rules = (int64_t *)PyBytes_AS_STRING(rule_values);
    for (Py_ssize_t row = 0; row < length; row++) {
        int32_t *span = spans + row * G_COUNT * 2;
        for (int g = 0; g < 2 * G_COUNT; g++) span[g] = 0;
        int found = -1;
        if (valid(&messages, row)) {
            Py_ssize_t m = m_offset + row;
            const char *text = messages.data + messages.offsets[m];
            size_t size = (size_t)(messages.offsets[m + 1] - messages.offsets[m]);
            if (!printable_ascii(text, size)) {
                found = -2;
            } else {
                int family = P_OTHER;
                if (valid(&programs, row)) {
                    Py_ssize_t p = p_offset + row;
                    family = family_of(programs.data + programs.offsets[p],
                                       (size_t)(programs.offsets[p + 1] - programs.offsets[p]));
                }
                Text x = {.t = text, .n = size};
                clean(&x);
                found = match_row(&x, family);
                if (found >= 0) {
                    for (int g = 0; g < G_COUNT; g++) {
                        if (x.s[g] == NPOS) continue;
                        span[2 * g] = (int32_t)((x.t - messages.data) + (Py_ssize_t)x.s[g]);
                        span[2 * g + 1] = (int32_t)((x.t - messages.data) + (Py_ssize_t)x.e[g]);
                    }
                }
            }
        }
        if (found >= 0) {
            rules[row] = found;
            set_bit(PyBytes_AS_STRING(rule_validity), row);
        } else {
            rule_nulls++;
            if (found == -2) {
                set_bit(PyBytes_AS_STRING(fallback), row);
                handed_back++;
            }
        }
    }
    groups = PyTuple_New(G_COUNT);
    if (groups == NULL) goto done;
    for (int g = 0; g < G_COUNT; g++) {
        PyObject *column = group_column(spans, g, length, messages.data);
        if (column == NULL) goto done;
        PyTuple_SET_ITEM(groups, g, column);
    }
    result = Py_BuildValue("(OOnOnO)", rule_validity, rule_values, rule_nulls, fallback, handed_back, groups);
done:
    PyMem_Free(spans);
    Py_XDECREF(rule_validity);
    Py_XDECREF(rule_values);
    Py_XDECREF(fallback);
    Py_XDECREF(groups);
    PyBuffer_Release(&pv);
    PyBuffer_Release(&po);
    PyBuffer_Release(&pd);
    PyBuffer_Release(&mv);
    PyBuffer_Release(&mo);
    PyBuffer_Release(&md);
    return result;
}

static PyObject *auth_rules(PyObject *self, PyObject *unused) {
    (void)self;
    (void)unused;
    PyObject *list = PyList_New(RULE_COUNT);
    if (list == NULL) return NULL;
    for (int r = 0; r < RULE_COUNT; r++) {
        const Rule *rule = &RULES[r];
        PyObject *item = Py_BuildValue("(szz)", PROGRAM_NAMES[rule->programs], rule->first,
                                       rule->first == NULL ? LITERALS[rule->literal] : NULL);
        if (item == NULL) { Py_DECREF(list); return NULL; }
        PyList_SET_ITEM(list, r, item);
    }
    return list;
}

static PyMethodDef METHODS[] = {
    {"match", auth_match, METH_VARARGS,
     "match(programs validity, offsets, data, offset, messages validity, offsets, data, offset, length) -> "
     "(rule validity, rule int64 values, rule nulls, fallback bitmap, fallback count, six groups as (validity, "
     "int32 offsets, data, nulls))"},
    {"rules", auth_rules, METH_NOARGS, "[(program family, first word, literal)] of each rule, in order"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "collectors._auth",
                                    "The authentication rules of collectors.auth, compiled.", -1, METHODS,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__auth(void) { return PyModule_Create(&MODULE); }
