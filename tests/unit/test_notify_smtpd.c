/*
 * test_notify_smtpd.c - the SMTP server side of relais-sim-smtp
 * (connectors/notify/notify_smtpd.c): command sequence and replies,
 * dot-stuffing, injected failures at RCPT and DATA, AUTH PLAIN, size and
 * line limits, and the decoding of received messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../connectors/notify/notify_smtpd.h"

typedef struct rec {
    int    fail_rcpt, fail_data;   /* codes to inject */
    int    nmsg;
    char  *from;
    json_t *to;
    char  *data;
} rec;

static int on_fail(void *cls, notify_smtpd_stage stage)
{
    rec *r = cls;
    return stage == NOTIFY_SMTPD_RCPT ? r->fail_rcpt : r->fail_data;
}

static void on_message(void *cls, const char *from, json_t *rcpts, const char *data, size_t len, char *id,
                       size_t idlen)
{
    rec *r = cls;
    r->nmsg++;
    free(r->from);
    free(r->data);
    json_decref(r->to);
    r->from = strdup(from);
    r->to = json_deep_copy(rcpts);
    r->data = strndup(data, len);
    snprintf(id, idlen, "Q%d", r->nmsg);
}

static void rec_free(rec *r)
{
    free(r->from);
    free(r->data);
    json_decref(r->to);
}

/* Feed one command line; returns the reply (static buffer) and the close flag. */
static const char *say(notify_smtpd *s, const char *line, int *closing)
{
    static char out[2048];
    notify_buf b = { 0 };
    int c = notify_smtpd_line(s, line, strlen(line), 0, &b);
    if (closing) *closing = c;
    snprintf(out, sizeof out, "%s", b.p ? b.p : "");
    free(b.p);
    return out;
}

#define EXPECT(s, line, prefix)                                                              \
    do {                                                                                     \
        const char *got_ = say((s), (line), NULL);                                           \
        if (strncmp(got_, (prefix), strlen(prefix)) != 0)                                    \
            fail_msg("'%s' answered '%s', expected '%s...'", (line), got_, (prefix));       \
    } while (0)

static void test_session(void **state)
{
    (void)state;
    rec r = { 0 };
    notify_smtpd_hooks h = { .fail = on_fail, .message = on_message, .cls = &r };
    notify_smtpd *s = notify_smtpd_new("sim.test", &h, 1000, NULL, NULL);
    notify_buf g = { 0 };
    notify_smtpd_greeting(s, &g);
    assert_string_equal(g.p, "220 sim.test ESMTP relais-sim-smtp ready\r\n");
    free(g.p);
    EXPECT(s, "MAIL FROM:<a@b.fr>", "503 ");            /* no EHLO yet */
    EXPECT(s, "EHLO", "501 ");
    const char *ehlo = say(s, "ehlo client.test", NULL);
    assert_non_null(strstr(ehlo, "250-sim.test"));
    assert_non_null(strstr(ehlo, "250-SIZE 1000\r\n"));
    assert_non_null(strstr(ehlo, "250 HELP\r\n"));
    assert_null(strstr(ehlo, "AUTH"));
    EXPECT(s, "RCPT TO:<c@d.fr>", "503 ");              /* no MAIL yet */
    EXPECT(s, "DATA", "503 ");
    EXPECT(s, "MAIL FROM:a@b.fr", "501 ");
    EXPECT(s, "MAIL FROM:<a@b.fr> SIZE=5000", "552 ");
    EXPECT(s, "MAIL FROM: <a@b.fr> BODY=8BITMIME", "250 ");
    EXPECT(s, "MAIL FROM:<x@y.fr>", "503 ");            /* nested */
    EXPECT(s, "DATA", "554 ");                          /* no recipient */
    EXPECT(s, "RCPT TO:<nobody>", "501 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "250 ");
    EXPECT(s, "rcpt to:<e@f.fr>", "250 ");
    EXPECT(s, "DATA now", "501 ");
    EXPECT(s, "DATA", "354 ");
    /* inside DATA nothing is answered until the lone dot */
    assert_string_equal(say(s, "Subject: test", NULL), "");
    assert_string_equal(say(s, "", NULL), "");
    assert_string_equal(say(s, "..a line that began with a dot", NULL), "");
    assert_string_equal(say(s, "QUIT", NULL), "");      /* text, not a command */
    EXPECT(s, ".", "250 2.0.0 OK queued as Q1");
    assert_int_equal(r.nmsg, 1);
    assert_string_equal(r.from, "a@b.fr");
    assert_int_equal(json_array_size(r.to), 2);
    assert_string_equal(json_string_value(json_array_get(r.to, 1)), "e@f.fr");
    assert_string_equal(r.data, "Subject: test\r\n\r\n.a line that began with a dot\r\nQUIT\r\n");
    /* the transaction is over: a new one needs MAIL again */
    EXPECT(s, "RCPT TO:<c@d.fr>", "503 ");
    EXPECT(s, "MAIL FROM:<>", "250 ");                  /* null sender (bounces) */
    EXPECT(s, "RSET", "250 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "503 ");
    EXPECT(s, "NOOP", "250 ");
    EXPECT(s, "VRFY someone", "252 ");
    EXPECT(s, "HELP", "214 ");
    EXPECT(s, "STARTTLS", "500 ");
    EXPECT(s, "", "500 ");
    EXPECT(s, "AUTH PLAIN AHUAcA==", "502 ");
    int closing = 0;
    const char *bye = say(s, "QUIT", &closing);
    assert_true(closing);
    assert_string_equal(bye, "221 2.0.0 sim.test closing connection\r\n");
    notify_smtpd_free(s);
    notify_smtpd_free(NULL);
    rec_free(&r);
}

static void test_injected_failures(void **state)
{
    (void)state;
    rec r = { .fail_rcpt = 451 };
    notify_smtpd_hooks h = { .fail = on_fail, .message = on_message, .cls = &r };
    notify_smtpd *s = notify_smtpd_new("sim.test", &h, 0, NULL, NULL);
    EXPECT(s, "HELO client", "250 sim.test");
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "451 4.3.0");
    r.fail_rcpt = 550;
    EXPECT(s, "RCPT TO:<c@d.fr>", "550 5.1.1");
    EXPECT(s, "DATA", "554 ");                          /* nobody accepted */
    r.fail_rcpt = 0;
    r.fail_data = 451;
    EXPECT(s, "RCPT TO:<c@d.fr>", "250 ");
    EXPECT(s, "DATA", "451 ");
    /* a refused DATA ends the transaction */
    EXPECT(s, "RCPT TO:<c@d.fr>", "503 ");
    r.fail_data = 503;
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "250 ");
    EXPECT(s, "DATA", "503 5.0.0 simulated failure");
    assert_int_equal(r.nmsg, 0);
    notify_smtpd_free(s);
    rec_free(&r);
}

static void test_limits(void **state)
{
    (void)state;
    rec r = { 0 };
    notify_smtpd_hooks h = { .message = on_message, .cls = &r };
    notify_smtpd *s = notify_smtpd_new("sim.test", &h, 64, NULL, NULL);
    notify_buf b = { 0 };
    assert_int_equal(notify_smtpd_line(s, "EHLO x", 6, 1, &b), 0);   /* cut line */
    assert_string_equal(b.p, "500 5.5.2 line too long\r\n");
    free(b.p);
    EXPECT(s, "EHLO x", "250-");
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "250 ");
    EXPECT(s, "DATA", "354 ");
    for (int i = 0; i < 10; i++) say(s, "0123456789", NULL);
    EXPECT(s, ".", "552 ");                             /* larger than 64 bytes */
    assert_int_equal(r.nmsg, 0);
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    EXPECT(s, "RCPT TO:<c@d.fr>", "250 ");
    EXPECT(s, "DATA", "354 ");
    memset(&b, 0, sizeof b);
    notify_smtpd_line(s, "abc", 3, 1, &b);
    assert_null(b.p);
    EXPECT(s, ".", "500 ");
    /* a line with a NUL byte is text like any other */
    memset(&b, 0, sizeof b);
    assert_int_equal(notify_smtpd_line(s, "NO\0OP", 5, 0, &b), 0);
    assert_non_null(strstr(b.p, "500 "));
    free(b.p);
    /* too many errors: the connection is closed */
    int closing = 0;
    for (int i = 0; i < 30 && !closing; i++) say(s, "BOGUS", &closing);
    assert_true(closing);
    notify_smtpd_free(s);
    rec_free(&r);
}

static void test_auth(void **state)
{
    (void)state;
    rec r = { 0 };
    notify_smtpd_hooks h = { .message = on_message, .cls = &r };
    notify_smtpd *s = notify_smtpd_new("sim.test", &h, 0, "relais", "s3cret");
    EXPECT(s, "AUTH PLAIN", "503 ");                    /* EHLO first */
    const char *ehlo = say(s, "EHLO x", NULL);
    assert_non_null(strstr(ehlo, "250-AUTH PLAIN\r\n"));
    EXPECT(s, "MAIL FROM:<a@b.fr>", "530 ");
    EXPECT(s, "AUTH LOGIN", "504 ");
    /* "\0relais\0wrong" */
    EXPECT(s, "AUTH PLAIN AHJlbGFpcwB3cm9uZw==", "535 ");
    EXPECT(s, "AUTH PLAIN !!!!", "501 ");
    /* two steps: "334 " then the response; "\0relais\0s3cret" */
    EXPECT(s, "AUTH PLAIN", "334 ");
    EXPECT(s, "AHJlbGFpcwBzM2NyZXQ=", "235 ");
    EXPECT(s, "AUTH PLAIN AHJlbGFpcwBzM2NyZXQ=", "503 ");
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    notify_smtpd_free(s);
    s = notify_smtpd_new("sim.test", &h, 0, "relais", "s3cret");
    EXPECT(s, "EHLO x", "250-");
    EXPECT(s, "AUTH PLAIN AHJlbGFpcwBzM2NyZXQ=", "235 ");   /* initial response */
    EXPECT(s, "MAIL FROM:<a@b.fr>", "250 ");
    notify_smtpd_free(s);
    rec_free(&r);
}

static void test_decode(void **state)
{
    (void)state;
    const char *msg = "From: =?UTF-8?Q?Mairie_de_Cl=C3=A9ry?= <m@x.fr>\r\n"
                      "To: a@b.fr\r\n"
                      "Subject: =?UTF-8?B?w6l0w6k=?=\r\n"
                      " =?utf-8?q?_et_hiver?= !\r\n"
                      "X-Empty:\r\n"
                      "Subject: second subject ignored\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "Qm9uam91ciDDqXTDqQ0KZmlu\r\n";
    json_t *d = notify_smtpd_decode(msg, strlen(msg));
    assert_string_equal(json_string_value(json_object_get(d, "subject")), "été et hiver !");
    assert_string_equal(json_string_value(json_object_get(d, "header_from")), "Mairie de Cléry <m@x.fr>");
    assert_string_equal(json_string_value(json_object_get(d, "body")), "Bonjour été\nfin");
    assert_string_equal(json_string_value(json_object_get(json_object_get(d, "headers"), "x-empty")), "");
    json_decref(d);
    /* unknown charsets are left as written; invalid UTF-8 becomes '?' */
    const char *m2 = "Subject: =?ISO-8859-1?Q?=E9t=E9?= \xff\r\n\r\nbody \xc3\r\n";
    d = notify_smtpd_decode(m2, strlen(m2));
    assert_string_equal(json_string_value(json_object_get(d, "subject")), "=?ISO-8859-1?Q?=E9t=E9?= ?");
    assert_string_equal(json_string_value(json_object_get(d, "body")), "body ?\n");
    json_decref(d);
    /* no blank line: all headers, empty body */
    d = notify_smtpd_decode("Subject: x", 10);
    assert_string_equal(json_string_value(json_object_get(d, "subject")), "x");
    assert_string_equal(json_string_value(json_object_get(d, "body")), "");
    json_decref(d);
    d = notify_smtpd_decode("", 0);
    assert_string_equal(json_string_value(json_object_get(d, "body")), "");
    json_decref(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session),
        cmocka_unit_test(test_injected_failures),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_auth),
        cmocka_unit_test(test_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
