/*
 * notify_text.c - pure text helpers of the notify connector: a growable
 * string, French labels and dates, the request number, address checks and
 * masking (no personal data in logs or journal details), and the RFC 5322
 * message: header fields with RFC 2047 encoded-words, a quoted-printable
 * (RFC 2045) body.
 *
 * No I/O, no threads, no global mutable state.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "notify_int.h"

/* ---- notify_buf ---------------------------------------------------------------- */

void notify_buf_add(notify_buf *b, const char *s, size_t n)
{
    if (b->oom || n == 0) return;
    if (b->len + n + 1 > NOTIFY_BUF_MAX) {
        b->oom = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 256;
        while (nc < b->len + n + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void notify_buf_adds(notify_buf *b, const char *s)
{
    notify_buf_add(b, s, strlen(s));
}

void notify_buf_addc(notify_buf *b, char c)
{
    notify_buf_add(b, &c, 1);
}

char *notify_buf_take(notify_buf *b, size_t *len)
{
    char *p = b->p;
    size_t n = b->len;
    int oom = b->oom;
    memset(b, 0, sizeof *b);
    if (oom) {
        free(p);
        return NULL;
    }
    if (!p) {
        p = calloc(1, 1);
        n = 0;
    }
    if (p && len) *len = n;
    return p;
}

/* ---- French labels ------------------------------------------------------------ */

static const char *const status_labels[][2] = {
    { "new", "enregistrée" },
    { "acknowledged", "prise en compte" },
    { "in_progress", "en cours de traitement" },
    { "waiting", "en attente" },
    { "resolved", "résolue" },
    { "closed", "clôturée" },
    { "rejected", "rejetée" },
};

static const char *const outcome_labels[][2] = {
    { "resolved", "résolue" },
    { "rejected", "refusée" },
    { "duplicate", "déjà signalée" },
    { "not_municipal", "transmise à l'organisme compétent" },
    { "withdrawn", "retirée à votre demande" },
    { "no_action", "classée sans suite" },
};

static const char *lookup(const char *const tbl[][2], size_t n, const char *key)
{
    if (!key) return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(tbl[i][0], key) == 0) return tbl[i][1];
    return NULL;
}

const char *notify_status_label(const char *status)
{
    return lookup(status_labels, sizeof status_labels / sizeof status_labels[0], status);
}

const char *notify_outcome_label(const char *outcome)
{
    return lookup(outcome_labels, sizeof outcome_labels / sizeof outcome_labels[0], outcome);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

void notify_french_date(const char *text, char *out, size_t outlen)
{
    static const char *const months[12] = { "janvier", "février", "mars", "avril", "mai", "juin",
                                            "juillet", "août", "septembre", "octobre",
                                            "novembre", "décembre" };
    static const int mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, m, d;
    if (outlen) out[0] = '\0';
    if (!text || strnlen(text, 10) < 10 || digits(text, 4, &y) || text[4] != '-'
        || digits(text + 5, 2, &m) || text[7] != '-' || digits(text + 8, 2, &d))
        return;
    if (text[10] != '\0' && text[10] != 'T' && text[10] != 't' && text[10] != ' ') return;
    if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1]) return;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (m == 2 && d == 29 && !leap) return;
    if (d == 1) snprintf(out, outlen, "1er %s %d", months[m - 1], y);
    else snprintf(out, outlen, "%d %s %d", d, months[m - 1], y);
}

void notify_address_text(const json_t *address, char *out, size_t outlen)
{
    notify_buf b = { 0 };
    const json_t *num = json_object_get(address, "number");
    const char *rep = json_string_value(json_object_get(address, "repetition"));
    const char *street = json_string_value(json_object_get(address, "street"));
    const char *pc = json_string_value(json_object_get(address, "postcode"));
    const char *city = json_string_value(json_object_get(address, "city"));
    char nb[32];
    if (json_is_integer(num) && street) {
        snprintf(nb, sizeof nb, "%lld", (long long)json_integer_value(num));
        notify_buf_adds(&b, nb);
        if (rep) {
            notify_buf_addc(&b, ' ');
            notify_buf_adds(&b, rep);
        }
        notify_buf_addc(&b, ' ');
    }
    if (street) notify_buf_adds(&b, street);
    if (pc || city) {
        if (b.len) notify_buf_adds(&b, ", ");
        if (pc) notify_buf_adds(&b, pc);
        if (pc && city) notify_buf_addc(&b, ' ');
        if (city) notify_buf_adds(&b, city);
    }
    char *s = notify_buf_take(&b, NULL);
    snprintf(out, outlen, "%s", s ? s : "");
    free(s);
}

void notify_request_number(const char *subject, const char *tracking_code, char *out, size_t outlen)
{
    if (tracking_code && *tracking_code) {
        snprintf(out, outlen, "%s", tracking_code);
        return;
    }
    const char *slash = subject ? strchr(subject, '/') : NULL;
    snprintf(out, outlen, "%s", slash ? slash + 1 : subject ? subject : "");
}

/* ---- Addresses ---------------------------------------------------------------- */

int notify_email_valid(const char *addr)
{
    if (!addr) return 0;
    size_t n = strlen(addr);
    if (n < 3 || n > 254) return 0;
    const char *at = strrchr(addr, '@');
    if (!at || at == addr || at - addr > 64 || !at[1]) return 0;
    for (const char *p = addr; p < at; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7F || strchr("<>()[]\\,;:\"@", c)) return 0;
    }
    const char *d = at + 1;
    if (*d == '.' || *d == '-' || d[strlen(d) - 1] == '.' || strstr(d, "..")) return 0;
    for (const char *p = d; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
              || c == '.'))
            return 0;
    }
    return 1;
}

int notify_phone_valid(const char *num)
{
    if (!num) return 0;
    size_t n = strlen(num);
    if (num[0] == '+') {
        if (n < 8 || n > 16 || num[1] < '1' || num[1] > '9') return 0;
        for (size_t i = 2; i < n; i++)
            if (num[i] < '0' || num[i] > '9') return 0;
        return 1;
    }
    if (n != 10 || num[0] != '0' || num[1] < '1' || num[1] > '9') return 0;
    for (size_t i = 2; i < n; i++)
        if (num[i] < '0' || num[i] > '9') return 0;
    return 1;
}

void notify_mask_email(const char *addr, char *out, size_t outlen)
{
    if (!notify_email_valid(addr)) {
        snprintf(out, outlen, "***");
        return;
    }
    const char *at = strrchr(addr, '@');
    const char *dot = strrchr(at, '.');
    if (dot && dot[1]) snprintf(out, outlen, "%c***@%c***%s", addr[0], at[1], dot);
    else snprintf(out, outlen, "%c***@%c***", addr[0], at[1]);
}

void notify_mask_phone(const char *num, char *out, size_t outlen)
{
    size_t n = num ? strlen(num) : 0;
    if (!notify_phone_valid(num) || outlen < n + 1) {
        snprintf(out, outlen, "***");
        return;
    }
    size_t head = num[0] == '+' ? 3 : 2;
    for (size_t i = 0; i < n; i++) out[i] = (i < head || i >= n - 2) ? num[i] : '*';
    out[n] = '\0';
}

/* ---- RFC 5322 / 2047 / 2045 ------------------------------------------------------ */

static int printable_ascii(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7E) return 0;
    return strstr(s, "=?") == NULL;
}

/* Bytes of the UTF-8 character starting at s (1 for a stray byte). */
static size_t char_len(const unsigned char *s)
{
    size_t n = *s < 0x80 ? 1 : *s >= 0xF0 ? 4 : *s >= 0xE0 ? 3 : *s >= 0xC0 ? 2 : 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 1;
    return n;
}

/* Append value as encoded-words; col is the column where the first word
 * starts (each physical line stays within 76 characters). */
static void encoded_words(notify_buf *b, const char *value, size_t col)
{
    const unsigned char *p = (const unsigned char *)value;
    size_t left = strlen(value);
    int first = 1;
    while (left > 0 || first) {
        size_t avail = 76 - (first ? col : 1);
        size_t maxbytes = avail > 12 ? (avail - 12) / 4 * 3 : 3;
        if (maxbytes < 4) maxbytes = 3;
        size_t take = 0;
        while (take < left) {
            size_t cl = char_len(p + take);
            if (take + cl > maxbytes) break;
            take += cl;
        }
        if (take == 0 && left > 0) take = char_len(p);   /* never stall */
        unsigned char enc[4 * 64 + 4];
        int el = EVP_EncodeBlock(enc, p, (int)take);
        if (!first) notify_buf_adds(b, "\r\n ");
        notify_buf_adds(b, "=?UTF-8?B?");
        notify_buf_add(b, (const char *)enc, el > 0 ? (size_t)el : 0);
        notify_buf_adds(b, "?=");
        p += take;
        left -= take;
        first = 0;
    }
}

/* Append printable ASCII text folded at spaces to stay within 78 columns. */
static void folded(notify_buf *b, const char *value, size_t col)
{
    const char *p = value;
    while (*p) {
        const char *sp = strchr(p + 1, ' ');
        size_t word = sp ? (size_t)(sp - p) : strlen(p);
        if (col + word > 78 && col > 1 && *p == ' ') {
            notify_buf_adds(b, "\r\n");
            col = 0;
        }
        notify_buf_add(b, p, word);
        col += word;
        p += word;
    }
}

char *notify_header_encode(const char *name, const char *value)
{
    notify_buf b = { 0 };
    notify_buf_adds(&b, name);
    notify_buf_adds(&b, ": ");
    size_t col = strlen(name) + 2;
    if (printable_ascii(value)) folded(&b, value, col);
    else encoded_words(&b, value, col);
    notify_buf_adds(&b, "\r\n");
    return notify_buf_take(&b, NULL);
}

char *notify_qp_encode(const char *text)
{
    static const char hex[] = "0123456789ABCDEF";
    notify_buf b = { 0 };
    const unsigned char *p = (const unsigned char *)text;
    size_t col = 0;
    while (*p) {
        if (*p == '\r' && p[1] == '\n') p++;
        if (*p == '\n') {
            notify_buf_adds(&b, "\r\n");
            col = 0;
            p++;
            continue;
        }
        unsigned char c = *p;
        int at_eol = p[1] == '\0' || p[1] == '\n' || (p[1] == '\r' && p[2] == '\n');
        char tok[4];
        size_t tl;
        if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !at_eol)) {
            tok[0] = (char)c;
            tl = 1;
        } else {
            tok[0] = '=';
            tok[1] = hex[c >> 4];
            tok[2] = hex[c & 15];
            tl = 3;
        }
        /* a soft break keeps every line within 76 characters, "=" included */
        if (col + tl > (at_eol ? 76 : 75)) {
            notify_buf_adds(&b, "=\r\n");
            col = 0;
        }
        notify_buf_add(&b, tok, tl);
        col += tl;
        p++;
    }
    return notify_buf_take(&b, NULL);
}

void notify_rfc5322_date(time_t t, char *out, size_t outlen)
{
    static const char *const days[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char *const mons[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(out, outlen, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf(out, outlen, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
             mons[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int atom_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p > 0x7E || *p == '"' || *p == '\\') return 0;
    return strstr(s, "=?") == NULL;
}

char *notify_build_message(const notify_mail *m, size_t *len)
{
    notify_buf b = { 0 };
    char date[64];
    notify_rfc5322_date(m->date, date, sizeof date);
    notify_buf_adds(&b, "Date: ");
    notify_buf_adds(&b, date);
    notify_buf_adds(&b, "\r\nFrom: ");
    if (m->from_name && *m->from_name) {
        if (atom_text(m->from_name)) {
            notify_buf_addc(&b, '"');
            notify_buf_adds(&b, m->from_name);
            notify_buf_addc(&b, '"');
        } else {
            encoded_words(&b, m->from_name, 6);
        }
        notify_buf_adds(&b, " <");
        notify_buf_adds(&b, m->from);
        notify_buf_adds(&b, ">\r\n");
    } else {
        notify_buf_adds(&b, m->from);
        notify_buf_adds(&b, "\r\n");
    }
    notify_buf_adds(&b, "To: ");
    notify_buf_adds(&b, m->to);
    notify_buf_adds(&b, "\r\n");
    char *subj = notify_header_encode("Subject", m->subject ? m->subject : "");
    if (!subj) b.oom = 1;
    else notify_buf_adds(&b, subj);
    free(subj);
    /* Message-ID from the event id: a redelivery carries the same one */
    const char *at = strrchr(m->from, '@');
    notify_buf_adds(&b, "Message-ID: <relais.");
    for (const char *p = m->event_id ? m->event_id : ""; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'
                 || c == '.' || c == '_';
        notify_buf_addc(&b, ok ? c : '_');
    }
    notify_buf_addc(&b, '@');
    notify_buf_adds(&b, at && at[1] ? at + 1 : "relais.invalid");
    notify_buf_adds(&b, ">\r\n"
                        "Auto-Submitted: auto-generated\r\n"
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: text/plain; charset=UTF-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n"
                        "\r\n");
    char *qp = notify_qp_encode(m->body ? m->body : "");
    if (!qp) b.oom = 1;
    else notify_buf_adds(&b, qp);
    if (qp && b.len >= 2 && !(b.p[b.len - 2] == '\r' && b.p[b.len - 1] == '\n'))
        notify_buf_adds(&b, "\r\n");
    free(qp);
    return notify_buf_take(&b, len);
}
