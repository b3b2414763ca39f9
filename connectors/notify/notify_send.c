/*
 * notify_send.c - the notify connector's two transports, with libcurl's easy
 * interface: an RFC 5322 message uploaded over SMTP (MAIL FROM, RCPT TO,
 * DATA: CURLOPT_MAIL_FROM, CURLOPT_MAIL_RCPT, CURLOPT_UPLOAD), and a text
 * POSTed as JSON to an SMS gateway. Each maps its outcome to a verdict and
 * a detail that names the channel and the masked recipient, never the
 * message nor the full address or number.
 *
 * SMTP verdicts: accepted -> OK; 4xx, no answer, refused connection,
 * timeout -> RETRY; 530/534/535/538 (authentication, RFC 4954) -> RETRY, the
 * relay's configuration is at fault; other 5xx (unknown mailbox, message
 * refused) -> REJECT.
 *
 * Both handles are set up by relais_http_policy_apply (hub/httputil.h): only
 * smtp/smtps for email and http/https for SMS, no redirects, TLS verified
 * (STARTTLS too) with TLS 1.2 minimum and ANSSI's suites, whole-exchange and
 * connect timeouts, and the hub's outgoing.allow checked on the address
 * connected to (a refusal is a REJECT: nothing was sent).
 *
 * Threads: called from the hub's delivery workers, up to the instance's
 * max_in_flight at once; each call uses its own easy handle and buffers, and
 * only reads the (immutable) transport settings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include "notify_int.h"

#define ANSWER_CAP (8 * 1024)

struct upload {
    const char *p;
    size_t      left;
};

static size_t on_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct upload *u = ud;
    size_t room = size * nitems;
    size_t n = u->left < room ? u->left : room;
    memcpy(buf, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

struct answer {
    char  *buf;
    size_t len;
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct answer *a = ud;
    size_t n = size * nmemb;
    size_t take = a->len + n > ANSWER_CAP ? ANSWER_CAP - a->len : n;
    if (take > 0) {
        char *nb = realloc(a->buf, a->len + take + 1);
        if (!nb) return 0;
        a->buf = nb;
        memcpy(a->buf + a->len, ptr, take);
        a->len += take;
        a->buf[a->len] = '\0';
    }
    return n;
}

/* Copy text into out on one line, printable, with every run of 6 or more
 * digits (a phone number a gateway may echo) replaced by "***". */
static void scrub(char *out, size_t outlen, const char *text, size_t maxin)
{
    size_t o = 0;
    for (size_t i = 0; text && text[i] && i < maxin && o + 4 < outlen;) {
        size_t run = 0;
        while (text[i + run] >= '0' && text[i + run] <= '9') run++;
        if (run >= 6) {
            memcpy(out + o, "***", 3);
            o += 3;
            i += run;
            continue;
        }
        unsigned char c = (unsigned char)text[i++];
        out[o++] = (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    if (outlen) out[o < outlen ? o : outlen - 1] = '\0';
}

void notify_send_email(const notify_smtp *s, const char *to, const char *msg, size_t len,
                       notify_result *r)
{
    char masked[64], from[320], rcpt_line[320], errbuf[CURL_ERROR_SIZE] = "";
    memset(r, 0, sizeof *r);
    notify_mask_email(to, masked, sizeof masked);
    CURL *h = curl_easy_init();
    snprintf(from, sizeof from, "<%s>", s->from);
    snprintf(rcpt_line, sizeof rcpt_line, "<%s>", to);
    struct curl_slist *rcpt = curl_slist_append(NULL, rcpt_line);
    if (!h || !rcpt) {
        curl_slist_free_all(rcpt);
        if (h) curl_easy_cleanup(h);
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "email to %s: out of memory", masked);
        return;
    }
    struct upload up = { msg, len };
    relais_http_guard g;
    if (relais_http_policy_apply(h, &s->policy, &g, s->timeout_ms,
                                 s->timeout_ms < 3000 ? s->timeout_ms : 3000L) != 0) {
        curl_easy_cleanup(h);
        curl_slist_free_all(rcpt);
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "email to %s: %.150s", masked, g.why);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &up);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(h, CURLOPT_USE_SSL, s->tls == 2 ? (long)CURLUSESSL_ALL
                                         : s->tls == 1 ? (long)CURLUSESSL_TRY : (long)CURLUSESSL_NONE);
    if (s->user) {
        curl_easy_setopt(h, CURLOPT_USERNAME, s->user);
        curl_easy_setopt(h, CURLOPT_PASSWORD, s->password ? s->password : "");
    }
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);

    r->status = (int)code;
    char why[128];
    snprintf(why, sizeof why, "%.120s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    if (rc != CURLE_OK && relais_http_guard_refused(&g)) {
        r->verdict = RELAIS_DELIVER_REJECT;
        r->status = 0;
        snprintf(r->detail, sizeof r->detail, "email to %s: %.160s", masked, g.why);
    } else if (rc == CURLE_OK) {
        r->verdict = RELAIS_DELIVER_OK;
        snprintf(r->detail, sizeof r->detail, "email to %s: SMTP %ld accepted", masked, code);
    } else if (rc == CURLE_LOGIN_DENIED || code == 530 || code == 534 || code == 535 || code == 538) {
        /* the relay wants (other) credentials or TLS (RFC 4954): the
         * configuration, not the message, is at fault */
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail,
                 "email to %s: SMTP login refused (%ld), will retry; check smtp_user, smtp_password, smtp_tls: %.60s",
                 masked, code, why);
    } else if (code >= 500 && code < 600) {
        r->verdict = RELAIS_DELIVER_REJECT;
        snprintf(r->detail, sizeof r->detail, "email to %s: SMTP %ld refused: %s", masked, code, why);
    } else if (code >= 400 && code < 500) {
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "email to %s: SMTP %ld transient, will retry: %s", masked,
                 code, why);
    } else {
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "email to %s: %s, will retry", masked, why);
    }
}

void notify_send_sms(const notify_sms *s, const char *to, const char *text, const char *reference,
                     notify_result *r)
{
    char masked[64], errbuf[CURL_ERROR_SIZE] = "";
    memset(r, 0, sizeof *r);
    notify_mask_phone(to, masked, sizeof masked);
    json_t *o = json_pack("{s:s,s:s,s:s}", "to", to, "text", text, "reference", reference);
    if (o && s->sender) json_object_set_new(o, "sender", json_string(s->sender));
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    CURL *h = body ? curl_easy_init() : NULL;
    struct curl_slist *hl = NULL;
    char line[1024];
    int oom = !h;
    const char *lines[3] = { "Content-Type: application/json", NULL, NULL };
    char keyline[1024], idem[256];
    if (s->key) {
        snprintf(keyline, sizeof keyline, "%s: %s", s->key_header, s->key);
        lines[1] = keyline;
    }
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", reference);
    lines[2] = idem;
    for (int i = 0; i < 3 && !oom; i++) {
        if (!lines[i]) continue;
        snprintf(line, sizeof line, "%s", lines[i]);
        struct curl_slist *n = curl_slist_append(hl, line);
        if (!n) oom = 1;
        else hl = n;
    }
    if (oom) {
        curl_slist_free_all(hl);
        if (h) curl_easy_cleanup(h);
        free(body);
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "sms to %s: out of memory", masked);
        return;
    }
    struct answer ans = { NULL, 0 };
    relais_http_guard g;
    if (relais_http_policy_apply(h, &s->policy, &g, s->timeout_ms,
                                 s->timeout_ms < 3000 ? s->timeout_ms : 3000L) != 0) {
        curl_slist_free_all(hl);
        curl_easy_cleanup(h);
        free(body);
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "sms to %s: %.150s", masked, g.why);
        return;
    }
    curl_easy_setopt(h, CURLOPT_URL, s->url);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "relais/" RELAIS_VERSION_STRING);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &ans);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    free(body);

    r->status = (int)code;
    json_t *a = ans.buf ? json_loadb(ans.buf, ans.len, 0, NULL) : NULL;
    if (rc != CURLE_OK && relais_http_guard_refused(&g)) {
        r->verdict = RELAIS_DELIVER_REJECT;
        snprintf(r->detail, sizeof r->detail, "sms to %s: %.160s", masked, g.why);
    } else if (rc != CURLE_OK) {
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "sms to %s: %.150s, will retry", masked,
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else if (code >= 200 && code < 300) {
        r->verdict = RELAIS_DELIVER_OK;
        json_t *id = json_object_get(a, "id");
        if (json_is_string(id)) scrub(r->id, sizeof r->id, json_string_value(id), 60);
        else if (json_is_integer(id)) snprintf(r->id, sizeof r->id, "%lld", (long long)json_integer_value(id));
        snprintf(r->detail, sizeof r->detail, "sms to %s: HTTP %ld accepted%s%s%s", masked, code,
                 r->id[0] ? " (message " : "", r->id, r->id[0] ? ")" : "");
    } else {
        const char *err = json_string_value(json_object_get(a, "error"));
        if (!err) err = json_string_value(json_object_get(a, "message"));
        char excerpt[120];
        scrub(excerpt, sizeof excerpt, err ? err : ans.buf ? ans.buf : "", 100);
        int retry = code == 408 || code == 425 || code == 429 || code >= 500 || code < 200;
        r->verdict = retry ? RELAIS_DELIVER_RETRY : RELAIS_DELIVER_REJECT;
        snprintf(r->detail, sizeof r->detail, "sms to %s: HTTP %ld %s%s%s", masked, code,
                 retry ? "transient, will retry" : "refused", excerpt[0] ? ": " : "", excerpt);
    }
    json_decref(a);
    free(ans.buf);
}
