/*
 * test_notify_text.c - the notify connector's pure text helpers
 * (connectors/notify/notify_text.c): French labels and dates, the request
 * number, address checks and masking, RFC 2047 header encoding,
 * quoted-printable and the RFC 5322 message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../connectors/notify/notify_int.h"
#include "../../connectors/notify/notify_smtpd.h"

static void test_status_labels(void **state)
{
    (void)state;
    assert_string_equal(notify_status_label("in_progress"), "en cours de traitement");
    assert_string_equal(notify_status_label("resolved"), "résolue");
    assert_string_equal(notify_status_label("new"), "enregistrée");
    assert_string_equal(notify_status_label("acknowledged"), "prise en compte");
    assert_string_equal(notify_status_label("waiting"), "en attente");
    assert_string_equal(notify_status_label("closed"), "clôturée");
    assert_string_equal(notify_status_label("rejected"), "rejetée");
    assert_null(notify_status_label("done"));
    assert_null(notify_status_label(NULL));
    assert_string_equal(notify_outcome_label("resolved"), "résolue");
    assert_string_equal(notify_outcome_label("not_municipal"), "transmise à l'organisme compétent");
    assert_string_equal(notify_outcome_label("no_action"), "classée sans suite");
    assert_null(notify_outcome_label("met"));
}

static void test_french_dates(void **state)
{
    (void)state;
    char d[64];
    notify_french_date("2026-03-05T10:14:00+01:00", d, sizeof d);
    assert_string_equal(d, "5 mars 2026");
    notify_french_date("2026-08-01", d, sizeof d);
    assert_string_equal(d, "1er août 2026");
    notify_french_date("2024-02-29T00:00:00Z", d, sizeof d);
    assert_string_equal(d, "29 février 2024");
    notify_french_date("2026-02-29", d, sizeof d);   /* not a leap year */
    assert_string_equal(d, "");
    notify_french_date("2026-13-01", d, sizeof d);
    assert_string_equal(d, "");
    notify_french_date("2026-03-0", d, sizeof d);
    assert_string_equal(d, "");
    notify_french_date("2026-03-05x", d, sizeof d);
    assert_string_equal(d, "");
    notify_french_date(NULL, d, sizeof d);
    assert_string_equal(d, "");
}

static void test_number_and_address(void **state)
{
    (void)state;
    char n[64], a[200];
    notify_request_number("request/wcs-voirie-12", NULL, n, sizeof n);
    assert_string_equal(n, "wcs-voirie-12");
    notify_request_number("request/o311-5", "VB7K2QXM", n, sizeof n);
    assert_string_equal(n, "VB7K2QXM");
    notify_request_number("request/o311-5", "", n, sizeof n);
    assert_string_equal(n, "o311-5");
    notify_request_number(NULL, NULL, n, sizeof n);
    assert_string_equal(n, "");
    json_t *addr = json_pack("{s:i,s:s,s:s,s:s,s:s}", "number", 12, "repetition", "bis", "street",
                             "rue des Tanneurs", "postcode", "35999", "city", "Villebrune");
    notify_address_text(addr, a, sizeof a);
    assert_string_equal(a, "12 bis rue des Tanneurs, 35999 Villebrune");
    json_decref(addr);
    addr = json_pack("{s:s}", "city", "Massy");
    notify_address_text(addr, a, sizeof a);
    assert_string_equal(a, "Massy");
    json_decref(addr);
    notify_address_text(NULL, a, sizeof a);
    assert_string_equal(a, "");
}

static void test_validation_and_masking(void **state)
{
    (void)state;
    assert_true(notify_email_valid("camille.kermarrec@example.fr"));
    assert_true(notify_email_valid("a@localhost"));
    assert_false(notify_email_valid("no-at.example.fr"));
    assert_false(notify_email_valid("a b@example.fr"));
    assert_false(notify_email_valid("a@exa mple.fr"));
    assert_false(notify_email_valid("a@example.fr>\r\nRCPT TO:<x@y.fr"));
    assert_false(notify_email_valid("<a@example.fr>"));
    assert_false(notify_email_valid("a@.fr"));
    assert_false(notify_email_valid("@example.fr"));
    assert_true(notify_phone_valid("+33612345678"));
    assert_true(notify_phone_valid("0612345678"));
    assert_false(notify_phone_valid("06 12 34 56 78"));
    assert_false(notify_phone_valid("+0612345678"));
    assert_false(notify_phone_valid("061234567"));

    char m[64];
    notify_mask_email("camille.kermarrec@example.fr", m, sizeof m);
    assert_string_equal(m, "c***@e***.fr");
    assert_null(strstr(m, "kermarrec"));
    notify_mask_email("a@localhost", m, sizeof m);
    assert_string_equal(m, "a***@l***");
    notify_mask_email("not an address", m, sizeof m);
    assert_string_equal(m, "***");
    notify_mask_phone("+33612345678", m, sizeof m);
    assert_string_equal(m, "+33*******78");
    notify_mask_phone("0612345678", m, sizeof m);
    assert_string_equal(m, "06******78");
    notify_mask_phone("12", m, sizeof m);
    assert_string_equal(m, "***");
}

/* Every physical line of a header block at most `max` characters. */
static void assert_lines_within(const char *s, size_t max)
{
    const char *p = s;
    while (*p) {
        const char *e = strstr(p, "\r\n");
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > max) fail_msg("line of %zu characters (max %zu): %.*s", n, max, (int)n, p);
        p = e ? e + 2 : p + n;
    }
}

static void test_header_encoding(void **state)
{
    (void)state;
    char *h = notify_header_encode("Subject", "Votre demande 42");
    assert_string_equal(h, "Subject: Votre demande 42\r\n");
    free(h);
    /* UTF-8: RFC 2047 encoded-word, base64 of the bytes */
    h = notify_header_encode("Subject", "été");
    assert_string_equal(h, "Subject: =?UTF-8?B?w6l0w6k=?=\r\n");
    free(h);
    /* a long subject: several encoded-words, folded, each line within 76
     * characters, characters never split between words, decoded back whole */
    const char *subject = "Votre demande n° GRC-2026-000123 a bien été enregistrée par la mairie "
                          "de Villebrune-sur-Vilaine — numéro à conserver";
    h = notify_header_encode("Subject", subject);
    assert_non_null(strstr(h, "=?UTF-8?B?"));
    assert_non_null(strstr(h, "?=\r\n =?UTF-8?B?"));
    assert_lines_within(h, 76);
    size_t n = strlen(h);
    assert_true(n > 2 && strcmp(h + n - 2, "\r\n") == 0);
    /* unfolded (RFC 5322 2.2.3) then decoded: the blank between two
     * encoded-words is not shown (RFC 2047 6.2) */
    char *unfolded = malloc(n + 1);
    size_t o = 0;
    for (const char *p = h + 9; p < h + n - 2; p++)
        if (*p != '\r' && *p != '\n') unfolded[o++] = *p;
    unfolded[o] = '\0';
    char *d = notify_smtpd_decode_words(unfolded, o);
    free(unfolded);
    if (strcmp(d, subject) != 0) {
        free(h);
        fail_msg("decoded '%s'", d);
    }
    free(d);
    for (const char *w = strstr(h, "=?UTF-8?B?"); w; w = strstr(w + 1, "=?UTF-8?B?")) {
        const char *e = strstr(w, "?=");
        assert_true(e - w + 2 <= 75);
        /* each word decodes to valid UTF-8 by itself (RFC 2047 section 5) */
        char *one = notify_smtpd_decode_words(w, (size_t)(e - w + 2));
        assert_null(strchr(one, '?'));
        free(one);
    }
    free(h);
    /* a long ASCII subject is folded at a space */
    h = notify_header_encode("Subject", "aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd eeeeeeeeee "
                                        "ffffffffff gggggggggg hhhhhhhhhh");
    assert_non_null(strstr(h, "\r\n "));
    assert_lines_within(h, 78);
    free(h);
    /* text that looks like an encoded-word is encoded, not passed through */
    h = notify_header_encode("Subject", "=?UTF-8?B?xx?=");
    assert_non_null(strstr(h, "=?UTF-8?B?PT9VVEYtOD9CP3h4Pz0=?="));
    free(h);
}

static void test_quoted_printable(void **state)
{
    (void)state;
    char *q = notify_qp_encode("Bonjour,\nété = chaud \n");
    assert_string_equal(q, "Bonjour,\r\n=C3=A9t=C3=A9 =3D chaud=20\r\n");
    free(q);
    /* soft breaks: no line over 76 characters; decoding gives the text back */
    char longline[400];
    for (int i = 0; i < 300; i++) longline[i] = (char)('a' + i % 26);
    memcpy(longline + 100, "é", 2);
    longline[300] = '\0';
    q = notify_qp_encode(longline);
    assert_lines_within(q, 76);
    assert_non_null(strstr(q, "=\r\n"));
    char msg[2048];
    snprintf(msg, sizeof msg, "Content-Transfer-Encoding: quoted-printable\r\n\r\n%s", q);
    json_t *dec = notify_smtpd_decode(msg, strlen(msg));
    assert_string_equal(json_string_value(json_object_get(dec, "body")), longline);
    json_decref(dec);
    free(q);
    /* an "=XX" token is never split by a soft break */
    char accents[200];
    for (int i = 0; i < 40; i++) memcpy(accents + 2 * i, "é", 2);
    accents[80] = '\0';
    q = notify_qp_encode(accents);
    for (const char *p = strstr(q, "=\r\n"); p; p = strstr(p + 3, "=\r\n")) {
        assert_true(p[3] == '=' || p[3] == '\0');
    }
    assert_lines_within(q, 76);
    free(q);
}

static void test_date_header(void **state)
{
    (void)state;
    char d[64];
    notify_rfc5322_date((time_t)1772702040, d, sizeof d);   /* 2026-03-05 09:14:00 UTC */
    assert_string_equal(d, "Thu, 05 Mar 2026 09:14:00 +0000");
}

static void test_build_message(void **state)
{
    (void)state;
    notify_mail m = { .from = "ne-pas-repondre@villebrune.example", .from_name = "Mairie de Villebrune",
                      .to = "camille@example.fr", .subject = "Votre demande n° 42 est résolue",
                      .body = "Bonjour,\n\nLe nid de poule a été rebouché.\n", .event_id = "019cbd47-72ea-7964",
                      .date = (time_t)1772702040 };
    size_t len = 0;
    char *msg = notify_build_message(&m, &len);
    assert_non_null(msg);
    assert_int_equal(len, strlen(msg));
    assert_non_null(strstr(msg, "Date: Thu, 05 Mar 2026 09:14:00 +0000\r\n"));
    assert_non_null(strstr(msg, "\r\nFrom: \"Mairie de Villebrune\" <ne-pas-repondre@villebrune.example>\r\n"));
    assert_non_null(strstr(msg, "\r\nTo: camille@example.fr\r\n"));
    assert_non_null(strstr(msg, "\r\nSubject: =?UTF-8?B?"));
    assert_non_null(strstr(msg, "\r\nMessage-ID: <relais.019cbd47-72ea-7964@villebrune.example>\r\n"));
    assert_non_null(strstr(msg, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(msg, "\r\nContent-Type: text/plain; charset=UTF-8\r\n"));
    assert_non_null(strstr(msg, "\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"));
    assert_non_null(strstr(msg, "\r\nAuto-Submitted: auto-generated\r\n"));
    /* only CRLF line ends, no bare LF, no 8-bit byte */
    for (size_t i = 0; i < len; i++) {
        if (msg[i] == '\n') assert_true(i > 0 && msg[i - 1] == '\r');
        assert_true((unsigned char)msg[i] < 0x80);
    }
    assert_string_equal(msg + len - 2, "\r\n");
    /* decoded back: the same subject and body */
    json_t *d = notify_smtpd_decode(msg, len);
    assert_string_equal(json_string_value(json_object_get(d, "subject")), m.subject);
    assert_string_equal(json_string_value(json_object_get(d, "body")), m.body);
    assert_string_equal(json_string_value(json_object_get(d, "message_id")),
                        "<relais.019cbd47-72ea-7964@villebrune.example>");
    json_decref(d);
    free(msg);

    /* a display name with accents is an encoded-word; no name: bare address */
    m.from_name = "Mairie de Saint-Étienne";
    msg = notify_build_message(&m, &len);
    assert_non_null(strstr(msg, "\r\nFrom: =?UTF-8?B?"));
    assert_non_null(strstr(msg, "?= <ne-pas-repondre@villebrune.example>\r\n"));
    json_t *d2 = notify_smtpd_decode(msg, len);
    assert_string_equal(json_string_value(json_object_get(d2, "header_from")),
                        "Mairie de Saint-Étienne <ne-pas-repondre@villebrune.example>");
    json_decref(d2);
    free(msg);
    m.from_name = NULL;
    m.event_id = "id with\r\nX-Injected: yes";
    msg = notify_build_message(&m, &len);
    assert_non_null(strstr(msg, "\r\nFrom: ne-pas-repondre@villebrune.example\r\n"));
    assert_null(strstr(msg, "\r\nX-Injected"));
    free(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_labels),
        cmocka_unit_test(test_french_dates),
        cmocka_unit_test(test_number_and_address),
        cmocka_unit_test(test_validation_and_masking),
        cmocka_unit_test(test_header_encoding),
        cmocka_unit_test(test_quoted_printable),
        cmocka_unit_test(test_date_header),
        cmocka_unit_test(test_build_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
