/*
 * notify_smtpd.c - the server side of an SMTP session and the decoding of
 * received messages, for relais-sim-smtp (see notify_smtpd.h). Pure: lines
 * in, replies out; fuzzed by tests/fuzz/fuzz_notify_smtp.c.
 *
 * Threads: a session is used by one connection thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/evp.h>
#include "notify_smtpd.h"

#define MAX_RCPTS 100
#define MAX_ERRORS 20

struct notify_smtpd {
    char              *host;
    notify_smtpd_hooks hooks;
    size_t             max_size;
    char              *user, *password;
    int                greeted;
    int                authed;
    int                auth_wait;      /* 1: the next line is the AUTH PLAIN response */
    int                in_mail;
    char              *from;
    json_t            *rcpts;
    int                in_data;
    notify_buf         data;
    int                data_too_big;
    int                data_bad_line;
    int                errors;
};

notify_smtpd *notify_smtpd_new(const char *hostname, const notify_smtpd_hooks *hooks, size_t max_size,
                               const char *user, const char *password)
{
    notify_smtpd *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->host = strdup(hostname ? hostname : "localhost");
    s->rcpts = json_array();
    if (hooks) s->hooks = *hooks;
    s->max_size = max_size ? max_size : 10u * 1024 * 1024;
    if (user) {
        s->user = strdup(user);
        s->password = strdup(password ? password : "");
    }
    if (!s->host || !s->rcpts || (user && (!s->user || !s->password))) {
        notify_smtpd_free(s);
        return NULL;
    }
    return s;
}

static void reset_tx(notify_smtpd *s)
{
    free(s->from);
    s->from = NULL;
    json_array_clear(s->rcpts);
    s->in_mail = 0;
    s->in_data = 0;
    free(s->data.p);
    memset(&s->data, 0, sizeof s->data);
    s->data_too_big = 0;
    s->data_bad_line = 0;
}

void notify_smtpd_free(notify_smtpd *s)
{
    if (!s) return;
    reset_tx(s);
    json_decref(s->rcpts);
    free(s->host);
    free(s->user);
    free(s->password);
    free(s);
}

static void reply(notify_buf *out, const char *text)
{
    notify_buf_adds(out, text);
    notify_buf_adds(out, "\r\n");
}

static void replyf(notify_buf *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void replyf(notify_buf *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    reply(out, line);
}

void notify_smtpd_greeting(notify_smtpd *s, notify_buf *out)
{
    replyf(out, "220 %s ESMTP relais-sim-smtp ready", s->host);
}

/* "FROM:" / "TO:" then "<address>" then optional parameters. 0 with the
 * address (without brackets) in addr; -1 on a syntax error. */
static int parse_path(const char *arg, size_t len, const char *kw, char *addr, size_t addrlen,
                      const char **params)
{
    size_t kl = strlen(kw);
    if (len < kl || strncasecmp(arg, kw, kl) != 0) return -1;
    size_t i = kl;
    while (i < len && arg[i] == ' ') i++;
    if (i >= len || arg[i] != '<') return -1;
    size_t start = ++i;
    while (i < len && arg[i] != '>') {
        unsigned char c = (unsigned char)arg[i];
        if (c <= 0x20 || c == 0x7F || c == '<') return -1;
        i++;
    }
    if (i >= len) return -1;
    size_t n = i - start;
    if (n + 1 > addrlen) return -1;
    memcpy(addr, arg + start, n);
    addr[n] = '\0';
    i++;
    if (i < len && arg[i] != ' ') return -1;
    *params = arg + i;
    return 0;
}

/* The SIZE=n parameter of MAIL FROM (RFC 1870) in params[0..len), 0 when
 * absent; saturates instead of overflowing. */
static unsigned long long declared_size(const char *params, size_t len)
{
    for (size_t i = 0; i + 5 <= len; i++) {
        if ((i == 0 || params[i - 1] == ' ') && strncasecmp(params + i, "SIZE=", 5) == 0) {
            unsigned long long v = 0;
            for (size_t k = i + 5; k < len && params[k] >= '0' && params[k] <= '9'; k++)
                v = v > 100000000000ULL ? v : v * 10 + (unsigned)(params[k] - '0');
            return v;
        }
    }
    return 0;
}

static int inject(notify_smtpd *s, notify_smtpd_stage stage)
{
    int code = s->hooks.fail ? s->hooks.fail(s->hooks.cls, stage) : 0;
    return code >= 400 && code <= 599 ? code : 0;
}

static void injected_reply(notify_buf *out, int code)
{
    if (code == 451) reply(out, "451 4.3.0 temporary local problem, try again later (simulated)");
    else if (code == 550) reply(out, "550 5.1.1 mailbox unavailable (simulated)");
    else if (code == 452) reply(out, "452 4.2.2 mailbox full (simulated)");
    else if (code == 421) reply(out, "421 4.3.2 service not available (simulated)");
    else if (code == 554) reply(out, "554 5.7.1 transaction failed (simulated)");
    else replyf(out, "%d %d.0.0 simulated failure", code, code / 100);
}

static void end_of_data(notify_smtpd *s, notify_buf *out)
{
    if (s->data_too_big) {
        reply(out, "552 5.3.4 message size exceeds the limit");
    } else if (s->data_bad_line) {
        reply(out, "500 5.5.2 line too long in the message");
    } else if (s->data.oom) {
        reply(out, "451 4.3.0 out of memory");
    } else {
        char id[64] = "";
        if (s->hooks.message)
            s->hooks.message(s->hooks.cls, s->from ? s->from : "", s->rcpts, s->data.p ? s->data.p : "",
                             s->data.len, id, sizeof id);
        replyf(out, "250 2.0.0 OK queued as %s", id[0] ? id : "0");
    }
    reset_tx(s);
}

static int data_line(notify_smtpd *s, const char *line, size_t len, int too_long, notify_buf *out)
{
    if (len == 1 && line[0] == '.' && !too_long) {
        end_of_data(s, out);
        return 0;
    }
    if (too_long) s->data_bad_line = 1;
    if (len > 0 && line[0] == '.') {   /* dot-stuffing (RFC 5321 4.5.2) */
        line++;
        len--;
    }
    if (s->data_too_big) return 0;
    if (s->data.len + len + 2 > s->max_size) {
        s->data_too_big = 1;
        free(s->data.p);
        memset(&s->data, 0, sizeof s->data);
        return 0;
    }
    notify_buf_add(&s->data, line, len);
    notify_buf_add(&s->data, "\r\n", 2);
    return 0;
}

/* AUTH PLAIN response: base64 of "authzid\0user\0password". */
static void auth_plain(notify_smtpd *s, const char *b64, size_t len, notify_buf *out)
{
    if (len == 1 && b64[0] == '*') {
        reply(out, "501 5.0.0 authentication cancelled");
        return;
    }
    unsigned char dec[NOTIFY_SMTPD_LINE_MAX];
    int n = -1;
    if (len > 0 && len % 4 == 0 && len <= sizeof dec) {
        n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)len);
        if (n >= 0) {   /* EVP_DecodeBlock counts the padding as zero bytes */
            if (len >= 1 && b64[len - 1] == '=') n--;
            if (len >= 2 && b64[len - 2] == '=') n--;
        }
    }
    if (n < 0) {
        reply(out, "501 5.5.2 cannot decode the AUTH response");
        return;
    }
    const unsigned char *z1 = memchr(dec, 0, (size_t)n);
    const unsigned char *z2 = z1 ? memchr(z1 + 1, 0, (size_t)(dec + n - z1 - 1)) : NULL;
    if (!z1 || !z2) {
        reply(out, "501 5.5.2 malformed PLAIN response");
        return;
    }
    size_t ul = (size_t)(z2 - z1 - 1), pl = (size_t)(dec + n - z2 - 1);
    if (s->user && ul == strlen(s->user) && memcmp(z1 + 1, s->user, ul) == 0
        && pl == strlen(s->password) && memcmp(z2 + 1, s->password, pl) == 0) {
        s->authed = 1;
        reply(out, "235 2.7.0 authentication successful");
    } else {
        reply(out, "535 5.7.8 authentication credentials invalid");
    }
}

int notify_smtpd_line(notify_smtpd *s, const char *line, size_t len, int too_long, notify_buf *out)
{
    if (s->in_data) return data_line(s, line, len, too_long, out);
    if (s->auth_wait) {
        s->auth_wait = 0;
        auth_plain(s, line, len, out);
        return 0;
    }
    if (too_long) {
        reply(out, "500 5.5.2 line too long");
        return ++s->errors >= MAX_ERRORS;
    }
    size_t vl = 0;
    while (vl < len && line[vl] != ' ') vl++;
    char verb[16];
    if (vl == 0 || vl >= sizeof verb) {
        reply(out, "500 5.5.2 syntax error, command unrecognized");
        if (++s->errors >= MAX_ERRORS) {
            reply(out, "421 4.7.0 too many errors, closing");
            return 1;
        }
        return 0;
    }
    for (size_t i = 0; i < vl; i++) {
        char c = line[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) c = '?';   /* verbs are letters */
        verb[i] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
    }
    verb[vl] = '\0';
    const char *arg = vl < len ? line + vl + 1 : line + len;
    size_t arglen = vl < len ? len - vl - 1 : 0;
    int bad = 0;

    if (strcmp(verb, "EHLO") == 0 || strcmp(verb, "HELO") == 0) {
        if (arglen == 0) {
            replyf(out, "501 5.5.4 syntax: %s hostname", verb);
            bad = 1;
        } else {
            reset_tx(s);
            s->greeted = 1;
            if (verb[0] == 'H') {
                replyf(out, "250 %s", s->host);
            } else {
                replyf(out, "250-%s greets you", s->host);
                reply(out, "250-8BITMIME");
                replyf(out, "250-SIZE %zu", s->max_size);
                if (s->user) reply(out, "250-AUTH PLAIN");
                reply(out, "250 HELP");
            }
        }
    } else if (strcmp(verb, "AUTH") == 0) {
        if (!s->user) {
            reply(out, "502 5.5.1 AUTH not offered");
            bad = 1;
        } else if (!s->greeted) {
            reply(out, "503 5.5.1 send EHLO first");
            bad = 1;
        } else if (s->authed) {
            reply(out, "503 5.5.1 already authenticated");
            bad = 1;
        } else if (arglen < 5 || strncasecmp(arg, "PLAIN", 5) != 0 || (arglen > 5 && arg[5] != ' ')) {
            reply(out, "504 5.5.4 unrecognized authentication type");
            bad = 1;
        } else if (arglen > 6) {
            auth_plain(s, arg + 6, arglen - 6, out);
        } else {
            s->auth_wait = 1;
            reply(out, "334 ");
        }
    } else if (strcmp(verb, "MAIL") == 0) {
        char addr[NOTIFY_SMTPD_LINE_MAX];
        const char *params = NULL;
        if (!s->greeted) {
            reply(out, "503 5.5.1 send HELO or EHLO first");
            bad = 1;
        } else if (s->user && !s->authed) {
            reply(out, "530 5.7.0 authentication required");
            bad = 1;
        } else if (s->in_mail) {
            reply(out, "503 5.5.1 nested MAIL command");
            bad = 1;
        } else if (parse_path(arg, arglen, "FROM:", addr, sizeof addr, &params) != 0) {
            reply(out, "501 5.5.4 syntax: MAIL FROM:<address>");
            bad = 1;
        } else {
            if (declared_size(params, (size_t)(arg + arglen - params)) > s->max_size) {
                reply(out, "552 5.3.4 message size exceeds the limit");
            } else {
                s->from = strdup(addr);
                s->in_mail = s->from != NULL;
                reply(out, s->from ? "250 2.1.0 OK" : "451 4.3.0 out of memory");
            }
        }
    } else if (strcmp(verb, "RCPT") == 0) {
        char addr[NOTIFY_SMTPD_LINE_MAX];
        const char *params = NULL;
        if (!s->in_mail) {
            reply(out, "503 5.5.1 need MAIL before RCPT");
            bad = 1;
        } else if (parse_path(arg, arglen, "TO:", addr, sizeof addr, &params) != 0 || !strchr(addr, '@')) {
            reply(out, "501 5.5.4 syntax: RCPT TO:<address>");
            bad = 1;
        } else if (json_array_size(s->rcpts) >= MAX_RCPTS) {
            reply(out, "452 4.5.3 too many recipients");
        } else {
            int code = inject(s, NOTIFY_SMTPD_RCPT);
            if (code) {
                injected_reply(out, code);
            } else {
                json_t *a = json_stringn(addr, strlen(addr));
                if (!a) {
                    /* not UTF-8: refused like any unknown mailbox */
                    reply(out, "553 5.1.3 bad recipient address syntax");
                } else {
                    json_array_append_new(s->rcpts, a);
                    reply(out, "250 2.1.5 OK");
                }
            }
        }
    } else if (strcmp(verb, "DATA") == 0) {
        if (arglen) {
            reply(out, "501 5.5.4 DATA takes no argument");
            bad = 1;
        } else if (!s->in_mail) {
            reply(out, "503 5.5.1 need MAIL before DATA");
            bad = 1;
        } else if (json_array_size(s->rcpts) == 0) {
            reply(out, "554 5.5.1 no valid recipients");
        } else {
            int code = inject(s, NOTIFY_SMTPD_DATA);
            if (code) {
                injected_reply(out, code);
                reset_tx(s);
            } else {
                s->in_data = 1;
                reply(out, "354 End data with <CR><LF>.<CR><LF>");
            }
        }
    } else if (strcmp(verb, "RSET") == 0) {
        reset_tx(s);
        reply(out, "250 2.0.0 OK");
    } else if (strcmp(verb, "NOOP") == 0) {
        reply(out, "250 2.0.0 OK");
    } else if (strcmp(verb, "VRFY") == 0) {
        reply(out, "252 2.5.2 cannot verify the user, but will accept the message");
    } else if (strcmp(verb, "HELP") == 0) {
        reply(out, "214 2.0.0 commands: EHLO HELO AUTH MAIL RCPT DATA RSET NOOP VRFY HELP QUIT");
    } else if (strcmp(verb, "QUIT") == 0) {
        replyf(out, "221 2.0.0 %s closing connection", s->host);
        return 1;
    } else {
        reply(out, "500 5.5.2 command unrecognized");
        bad = 1;
    }
    if (bad && ++s->errors >= MAX_ERRORS) {
        reply(out, "421 4.7.0 too many errors, closing");
        return 1;
    }
    return 0;
}

/* ---- Decoding received messages --------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Base64 with blanks and line ends ignored; 0 ok. */
static int b64_decode(const char *in, size_t len, notify_buf *out)
{
    notify_buf clean = { 0 };
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        notify_buf_addc(&clean, c);
    }
    size_t n = 0;
    char *t = notify_buf_take(&clean, &n);
    if (!t) return -1;
    int rc = 0;
    if (n % 4 != 0) rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i += 4) {
        unsigned char dec[4];
        int k = EVP_DecodeBlock(dec, (const unsigned char *)t + i, 4);
        if (k != 3) {
            rc = -1;
            break;
        }
        if (t[i + 3] == '=') k--;
        if (t[i + 2] == '=') k--;
        if (k < 1) { rc = -1; break; }
        notify_buf_add(out, (const char *)dec, (size_t)k);
    }
    free(t);
    return rc;
}

/* Quoted-printable body (RFC 2045 6.7): soft breaks, =XX. */
static void qp_decode(const char *in, size_t len, notify_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '=') {
            size_t j = i + 1;
            while (j < len && (in[j] == ' ' || in[j] == '\t')) j++;   /* "=  \r\n" */
            if (j < len && (in[j] == '\r' || in[j] == '\n')) {
                if (in[j] == '\r' && j + 1 < len && in[j + 1] == '\n') j++;
                i = j;
                continue;
            }
            if (i + 2 < len && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
                notify_buf_addc(out, (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2])));
                i += 2;
                continue;
            }
            notify_buf_addc(out, '=');
            continue;
        }
        notify_buf_addc(out, c);
    }
}

/* RFC 2047 Q: '_' is a space. */
static void q_decode(const char *in, size_t len, notify_buf *out)
{
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '_') notify_buf_addc(out, ' ');
        else if (in[i] == '=' && i + 2 < len && hexval(in[i + 1]) >= 0 && hexval(in[i + 2]) >= 0) {
            notify_buf_addc(out, (char)(hexval(in[i + 1]) * 16 + hexval(in[i + 2])));
            i += 2;
        } else {
            notify_buf_addc(out, in[i]);
        }
    }
}

/* At v[i]: an encoded-word "=?cs?e?text?=": decoded into out, *end past it. */
static int encoded_word(const char *v, size_t len, size_t i, notify_buf *out, size_t *end)
{
    if (i + 2 > len || v[i] != '=' || v[i + 1] != '?') return -1;
    size_t cs = i + 2, q1 = cs;
    while (q1 < len && v[q1] != '?') q1++;
    if (q1 + 2 >= len || v[q1 + 2] != '?') return -1;
    char enc = v[q1 + 1];
    size_t text = q1 + 3, q2 = text;
    while (q2 + 1 < len && !(v[q2] == '?' && v[q2 + 1] == '=')) {
        if (v[q2] == ' ' || v[q2] == '\t' || v[q2] == '\r' || v[q2] == '\n') return -1;
        q2++;
    }
    if (q2 + 1 >= len) return -1;
    size_t csl = q1 - cs;
    const char *star = memchr(v + cs, '*', csl);   /* RFC 2231 language suffix */
    if (star) csl = (size_t)(star - (v + cs));
    int known = (csl == 5 && strncasecmp(v + cs, "UTF-8", 5) == 0)
                || (csl == 8 && strncasecmp(v + cs, "US-ASCII", 8) == 0);
    if (!known) return -1;
    if (enc == 'B' || enc == 'b') {
        if (b64_decode(v + text, q2 - text, out) != 0) return -1;
    } else if (enc == 'Q' || enc == 'q') {
        q_decode(v + text, q2 - text, out);
    } else {
        return -1;
    }
    *end = q2 + 2;
    return 0;
}

char *notify_smtpd_decode_words(const char *v, size_t len)
{
    notify_buf out = { 0 };
    size_t i = 0;
    int prev_word = 0;      /* the last thing written was an encoded-word */
    size_t ws_start = 0, ws_len = 0;
    while (i < len) {
        if (v[i] == ' ' || v[i] == '\t') {
            ws_start = i;
            while (i < len && (v[i] == ' ' || v[i] == '\t')) i++;
            ws_len = i - ws_start;
            size_t end;
            notify_buf probe = { 0 };
            int next_word = encoded_word(v, len, i, &probe, &end) == 0;
            free(probe.p);
            /* blanks between two encoded-words are not shown (RFC 2047 6.2) */
            if (!(prev_word && next_word)) notify_buf_add(&out, v + ws_start, ws_len);
            continue;
        }
        size_t end;
        size_t before = out.len;
        if (encoded_word(v, len, i, &out, &end) == 0) {
            i = end;
            prev_word = 1;
            continue;
        }
        if (!out.oom) out.len = before;   /* drop what a failed attempt appended */
        if (out.p) out.p[out.len] = '\0';
        notify_buf_addc(&out, v[i]);
        prev_word = 0;
        i++;
    }
    return notify_buf_take(&out, NULL);
}

/* A JSON string of UTF-8-sanitised text (bad bytes and NUL become '?'). */
static json_t *text_value(const char *s, size_t len)
{
    notify_buf b = { 0 };
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)s[i];
        size_t need = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                    : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        int ok = need > 0 && i + need <= len && c != 0;
        for (size_t k = 1; ok && k < need; k++) ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && need == 3) {
            unsigned c1 = (unsigned char)s[i + 1];
            if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) ok = 0;
        }
        if (ok && need == 4) {
            unsigned c1 = (unsigned char)s[i + 1];
            if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) ok = 0;
        }
        if (ok) {
            notify_buf_add(&b, s + i, need);
            i += need;
        } else {
            notify_buf_addc(&b, '?');
            i++;
        }
    }
    size_t n = 0;
    char *t = notify_buf_take(&b, &n);
    json_t *j = t ? json_stringn(t, n) : NULL;
    free(t);
    return j;
}

/* Add the header gathered in name/value (emptied) unless one of that name is there. */
static void add_header(json_t *headers, notify_buf *name, notify_buf *value, int *count)
{
    size_t nl = 0, vl = 0;
    char *n = notify_buf_take(name, &nl);
    char *v = notify_buf_take(value, &vl);
    if (n && v && nl > 0 && *count < 100) {
        json_t *key = text_value(n, nl);
        const char *k = json_string_value(key);
        if (k && *k && !json_object_get(headers, k)) {
            size_t a = 0;
            while (a < vl && (v[a] == ' ' || v[a] == '\t')) a++;
            while (vl > a && (v[vl - 1] == ' ' || v[vl - 1] == '\t')) vl--;
            json_t *val = text_value(v + a, vl - a);
            if (val) {
                json_object_set_new(headers, k, val);
                (*count)++;
            }
        }
        json_decref(key);
    }
    free(n);
    free(v);
}

json_t *notify_smtpd_decode(const char *data, size_t len)
{
    json_t *o = json_object(), *headers = json_object();
    if (!o || !headers) {
        json_decref(o);
        json_decref(headers);
        return NULL;
    }
    json_object_set_new(o, "headers", headers);
    /* headers: up to the first empty line; continuation lines unfolded */
    notify_buf name = { 0 }, value = { 0 };
    int have = 0, count = 0;
    size_t i = 0, body_at = len;
    while (i < len) {
        size_t e = i;
        while (e < len && data[e] != '\n') e++;
        size_t le = e > i && data[e - 1] == '\r' ? e - 1 : e;
        size_t next = e < len ? e + 1 : len;
        if (le == i) {                 /* the empty line: the body follows */
            body_at = next;
            break;
        }
        if (data[i] == ' ' || data[i] == '\t') {
            if (have) notify_buf_add(&value, data + i, le - i);
        } else {
            if (have) add_header(headers, &name, &value, &count);
            have = 0;
            const char *colon = memchr(data + i, ':', le - i);
            if (colon && colon > data + i) {
                for (const char *p = data + i; p < colon; p++) {
                    char c = *p;
                    notify_buf_addc(&name, (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c);
                }
                notify_buf_add(&value, colon + 1, (size_t)(data + le - colon - 1));
                have = 1;
            }
        }
        i = next;
    }
    if (have) add_header(headers, &name, &value, &count);
    free(name.p);
    free(value.p);
    static const char *const shown[][2] = {
        { "subject", "subject" }, { "from", "header_from" }, { "to", "header_to" },
        { "message-id", "message_id" }, { "date", "date" }, { "content-type", "content_type" },
        { "content-transfer-encoding", "transfer_encoding" },
    };
    for (size_t k = 0; k < sizeof shown / sizeof shown[0]; k++) {
        const char *v = json_string_value(json_object_get(headers, shown[k][0]));
        if (!v) continue;
        char *d = notify_smtpd_decode_words(v, strlen(v));
        if (d) json_object_set_new(o, shown[k][1], text_value(d, strlen(d)));
        free(d);
    }
    const char *cte = json_string_value(json_object_get(headers, "content-transfer-encoding"));
    notify_buf body = { 0 };
    const char *b = data + body_at;
    size_t bl = len - body_at;
    if (cte && strncasecmp(cte, "quoted-printable", 16) == 0) {
        qp_decode(b, bl, &body);
    } else if (cte && strncasecmp(cte, "base64", 6) == 0) {
        if (b64_decode(b, bl, &body) != 0) {
            free(body.p);
            memset(&body, 0, sizeof body);
            notify_buf_add(&body, b, bl);
        }
    } else {
        notify_buf_add(&body, b, bl);
    }
    size_t n = 0;
    char *t = notify_buf_take(&body, &n);
    if (t) {   /* CRLF -> LF */
        size_t w = 0;
        for (size_t k = 0; k < n; k++)
            if (!(t[k] == '\r' && k + 1 < n && t[k + 1] == '\n')) t[w++] = t[k];
        t[w] = '\0';
        n = w;
    }
    json_t *jb = t ? text_value(t, n) : NULL;
    free(t);
    if (!jb) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "body", jb);
    return o;
}
