/*
 * fuzz_notify_smtp.c - libFuzzer target over the SMTP server side of
 * relais-sim-smtp (connectors/notify/notify_smtpd.c): the command parser
 * and session state machine, and the decoding of received messages
 * (headers, RFC 2047 encoded-words, quoted-printable and base64 bodies).
 *
 * Input: the first byte sets the injected failure (none, 451 or 550, at
 * RCPT or DATA), the maximum message size and whether AUTH is required;
 * the rest is what a client sends, cut into lines at "\n" (lines longer
 * than 1000 bytes are passed cut, as the simulator does). Every reply line
 * must be "<3 digits><space or dash>...CRLF" with a code from 200 to 599;
 * every accepted message is decoded; the whole input is decoded too.
 * Seeds: tests/fuzz/corpus/notify_smtp/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "notify_smtpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

struct ctx {
    int code;
    int stage;
    int messages;
};

static int on_fail(void *cls, notify_smtpd_stage stage)
{
    struct ctx *c = cls;
    return (int)stage == c->stage ? c->code : 0;
}

static void on_message(void *cls, const char *from, json_t *rcpts, const char *d, size_t len, char *id,
                       size_t idlen)
{
    struct ctx *c = cls;
    check(json_array_size(rcpts) > 0);
    check(from != NULL);
    json_t *m = notify_smtpd_decode(d, len);
    check(m != NULL);
    check(json_is_string(json_object_get(m, "body")));
    json_decref(m);
    c->messages++;
    id[0] = idlen > 1 ? 'M' : '\0';
    if (idlen > 1) id[1] = '\0';
}

static void check_replies(const notify_buf *b)
{
    const char *p = b->p;
    if (!p) return;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        check(e != NULL);
        check(e - p >= 4);
        check(p[0] >= '2' && p[0] <= '5' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' && p[2] <= '9');
        check(p[3] == ' ' || p[3] == '-');
        p = e + 2;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const int codes[3] = { 0, 451, 550 };
    struct ctx c = { codes[data[0] % 3], (data[0] >> 2) & 1, 0 };
    size_t max_size = (data[0] & 0x10) ? 64 : 4096;
    int auth = (data[0] & 0x20) != 0;
    notify_smtpd_hooks h = { .fail = on_fail, .message = on_message, .cls = &c };
    notify_smtpd *s = notify_smtpd_new("fuzz.test", &h, max_size, auth ? "u" : NULL, auth ? "p" : NULL);
    if (!s) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1;
    notify_buf out = { 0 };
    notify_smtpd_greeting(s, &out);
    check_replies(&out);
    size_t i = 0;
    int closed = 0;
    while (i < n && !closed) {
        size_t e = i;
        while (e < n && in[e] != '\n') e++;
        size_t len = e - i;
        int too_long = len > NOTIFY_SMTPD_LINE_MAX;
        if (too_long) len = NOTIFY_SMTPD_LINE_MAX;
        if (len > 0 && in[i + len - 1] == '\r' && !too_long) len--;
        out.len = 0;
        if (out.p) out.p[0] = '\0';
        closed = notify_smtpd_line(s, in + i, len, too_long, &out);
        check(!out.oom);
        check_replies(&out);
        i = e + 1;
    }
    free(out.p);
    notify_smtpd_free(s);
    json_t *m = notify_smtpd_decode(in, n);
    check(m != NULL);
    json_decref(m);
    char *w = notify_smtpd_decode_words(in, n);
    check(w != NULL);
    free(w);
    return 0;
}
