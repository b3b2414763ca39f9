/*
 * notify.c - the `notify` connector: tells the citizen about their request.
 *
 * A sink. For fr.relais.grc.request.created (an acknowledgement with the
 * request number), grc.request.updated carrying a public comment, and
 * grc.request.closed (the answer; whether the town met its commitment is
 * not told), it renders a French message from the instance's templates
 * (notify_tpl.c) and sends it by email (SMTP) and/or SMS (HTTP gateway)
 * (notify_send.c).
 *
 * Only grc.request.created carries the citizen's contact
 * (data.requester.contact): deliver() keeps it, with the request's number,
 * category, title and address, in the package state under
 * "contact/<subject>" (relais_state_put), and later events of the request
 * read it back. After the closing message has gone out the contact is
 * erased from the state. Deliver the events of one request in order
 * (`order: subject` on the instance) so that the created event is seen
 * first.
 *
 * Channel: the contact's preferred_channel when it is email or sms and
 * reachable, else sms when there is a mobile, else email; `channels: both`
 * sends on every reachable channel. A channel is reachable when the contact
 * has its address, the instance has its transport and the consent for it
 * is not false (with require_consent: true it must be true). When two
 * channels are used and one must be retried, what went out is recorded
 * under "sent/<event id>" so that the retry sends only the rest.
 *
 * Documentation: connectors/notify/README.md.
 *
 * Threads: init/destroy on the hub's main thread; deliver() on the
 * delivery workers, up to max_in_flight at once. The context is immutable
 * after init; each deliver() works on its own buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <curl/curl.h>
#include "notify_int.h"
#include "event_int.h"

#define SNK RELAIS_MODE_SINK
#define OFF(f) offsetof(notify_config, f)

static const relais_option notify_options[] = {
    { .name = "smtp_url", .type = RELAIS_OPT_URL, .offset = OFF(smtp_url), .modes = SNK,
      .desc = "SMTP relay for email, smtp://host:port or smtps://host:port; unset: no email" },
    { .name = "mail_from", .type = RELAIS_OPT_STR, .offset = OFF(mail_from), .modes = SNK,
      .desc = "sender address (envelope and From:); required with smtp_url" },
    { .name = "mail_from_name", .type = RELAIS_OPT_STR, .offset = OFF(mail_from_name), .modes = SNK,
      .desc = "display name of From:, e.g. Mairie de Villebrune" },
    { .name = "smtp_tls", .type = RELAIS_OPT_ENUM, .def = "try", .enum_values = "none|try|required",
      .offset = OFF(smtp_tls), .modes = SNK,
      .desc = "STARTTLS on smtp://: none, try (when the relay offers it) or required" },
    { .name = "smtp_user", .type = RELAIS_OPT_STR, .offset = OFF(smtp_user), .modes = SNK,
      .desc = "SMTP AUTH user name; unset: no authentication" },
    { .name = "smtp_password", .type = RELAIS_OPT_SECRET, .offset = OFF(smtp_password), .modes = SNK,
      .desc = "SMTP AUTH password (env:NAME or file:/path)" },
    { .name = "sms_url", .type = RELAIS_OPT_URL, .offset = OFF(sms_url), .modes = SNK,
      .desc = "SMS gateway send endpoint, http(s)://.../api/sms; unset: no SMS" },
    { .name = "sms_key", .type = RELAIS_OPT_SECRET, .offset = OFF(sms_key), .modes = SNK,
      .desc = "SMS gateway API key (env:NAME or file:/path), sent in sms_key_header" },
    { .name = "sms_key_header", .type = RELAIS_OPT_STR, .def = "X-API-Key", .offset = OFF(sms_key_header),
      .modes = SNK, .desc = "header carrying the SMS gateway API key" },
    { .name = "sms_sender", .type = RELAIS_OPT_STR, .offset = OFF(sms_sender), .modes = SNK,
      .desc = "sender name shown on the phone (11 characters at most for most operators)" },
    { .name = "town", .type = RELAIS_OPT_STR, .offset = OFF(town), .modes = SNK,
      .desc = "the town's name, {{town}} in the templates" },
    { .name = "channels", .type = RELAIS_OPT_ENUM, .def = "preferred", .enum_values = "preferred|both",
      .offset = OFF(channels), .modes = SNK,
      .desc = "preferred: one channel (preferred_channel, else sms, else email); both: every reachable one" },
    { .name = "templates", .type = RELAIS_OPT_STR, .offset = OFF(templates), .modes = SNK,
      .desc = "folder of the message templates; default: the built-in connectors/notify/templates" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s", .offset = OFF(timeout), .modes = SNK,
      .desc = "whole exchange with the SMTP relay or the gateway (then RETRY)" },
    { .name = "require_consent", .type = RELAIS_OPT_BOOL, .def = "false", .offset = OFF(require_consent),
      .modes = SNK,
      .desc = "send only on channels whose consent is true (default: unless it is false)" },
    RELAIS_HTTP_TLS_OPTIONS(notify_config, SNK),
    { .name = NULL }
};

typedef struct notify_ctx {
    relais_instance *inst;
    notify_templates tpl;
    notify_smtp      smtp;
    notify_sms       sms;
    int              has_email, has_sms;
    const char      *from_name;
    const char      *town;
    int              both;
    int              require_consent;
    int              curl_inited;
} notify_ctx;

/* The folder of the built-in templates: set by the build, else next to
 * this source file (a build tree). */
static void default_template_dir(char *out, size_t len)
{
#ifdef RELAIS_NOTIFY_TEMPLATE_DIR
    snprintf(out, len, "%s", RELAIS_NOTIFY_TEMPLATE_DIR);
#else
    const char *f = __FILE__;
    const char *slash = strrchr(f, '/');
    if (slash) snprintf(out, len, "%.*s/templates", (int)(slash - f), f);
    else snprintf(out, len, "templates");
#endif
}

static int no_controls(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7F) return 0;
    return 1;
}

static int header_name_ok(const char *s)
{
    if (!*s) return 0;
    for (const char *p = s; *p; p++)
        if (!(*p == '-' || *p == '_' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9')))
            return 0;
    return 1;
}

/* 0 when url parses (libcurl) with one of the schemes "a,b". */
static int url_scheme_ok(const char *url, const char *a, const char *b)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    CURLUcode uc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
    int ok = uc == CURLUE_OK && scheme && (strcasecmp(scheme, a) == 0 || strcasecmp(scheme, b) == 0);
    curl_free(scheme);
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

static void notify_destroy(void *ctx);

static int notify_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const notify_config *cfg = config;
    if (relais_instance_mode(inst) != RELAIS_MODE_SINK) {
        snprintf(errstr, errlen, "notify: mode must be sink");
        return -1;
    }
    if (!cfg->smtp_url && !cfg->sms_url) {
        snprintf(errstr, errlen, "notify: give smtp_url (email), sms_url (SMS) or both");
        return -1;
    }
    if (cfg->timeout <= 0) {
        snprintf(errstr, errlen, "notify: timeout must be positive");
        return -1;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(errstr, errlen, "notify: curl_global_init failed");
        return -1;
    }
    notify_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        curl_global_cleanup();
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    c->curl_inited = 1;
    c->inst = inst;
    if (cfg->smtp_url) {
        if (url_scheme_ok(cfg->smtp_url, "smtp", "smtps") != 0) {
            snprintf(errstr, errlen, "notify: smtp_url '%.200s' is not a valid smtp:// or smtps:// URL",
                     cfg->smtp_url);
            goto fail;
        }
        if (!cfg->mail_from || !notify_email_valid(cfg->mail_from)) {
            snprintf(errstr, errlen, "notify: mail_from must be a valid address when smtp_url is set");
            goto fail;
        }
        if (cfg->mail_from_name && !no_controls(cfg->mail_from_name)) {
            snprintf(errstr, errlen, "notify: mail_from_name contains control characters");
            goto fail;
        }
        if (cfg->smtp_password && !cfg->smtp_user) {
            snprintf(errstr, errlen, "notify: smtp_password needs smtp_user");
            goto fail;
        }
        c->has_email = 1;
        c->smtp.url = cfg->smtp_url;
        c->smtp.from = cfg->mail_from;
        c->smtp.user = cfg->smtp_user;
        c->smtp.password = cfg->smtp_password;
        c->smtp.tls = cfg->smtp_tls && strcmp(cfg->smtp_tls, "required") == 0 ? 2
                    : cfg->smtp_tls && strcmp(cfg->smtp_tls, "none") == 0 ? 0 : 1;
        c->smtp.timeout_ms = cfg->timeout;
        c->from_name = cfg->mail_from_name;
        char perr[300];
        if (relais_http_policy_init(&c->smtp.policy, inst, "smtp,smtps", cfg->tls_ca_file, cfg->tls_verify,
                                    perr, sizeof perr) != 0) {
            snprintf(errstr, errlen, "notify: %s", perr);
            goto fail;
        }
    }
    if (cfg->sms_url) {
        if (url_scheme_ok(cfg->sms_url, "http", "https") != 0) {
            snprintf(errstr, errlen, "notify: sms_url '%.200s' is not a valid http:// or https:// URL",
                     cfg->sms_url);
            goto fail;
        }
        if (!cfg->sms_key_header || !header_name_ok(cfg->sms_key_header)) {
            snprintf(errstr, errlen, "notify: sms_key_header must be a header name (letters, digits, '-')");
            goto fail;
        }
        if (cfg->sms_key && (!*cfg->sms_key || !no_controls(cfg->sms_key))) {
            snprintf(errstr, errlen, "notify: sms_key is empty or contains control characters");
            goto fail;
        }
        c->has_sms = 1;
        c->sms.url = cfg->sms_url;
        c->sms.key_header = cfg->sms_key_header;
        c->sms.key = cfg->sms_key;
        c->sms.sender = cfg->sms_sender;
        c->sms.timeout_ms = cfg->timeout;
        char perr[300];
        if (c->has_email) {
            /* the same TLS settings and allow-list, for http(s): checked and
             * warned about once, by the email policy */
            c->sms.policy = c->smtp.policy;
            c->sms.policy.protocols = NULL;
        } else if (relais_http_policy_init(&c->sms.policy, inst, NULL, cfg->tls_ca_file, cfg->tls_verify,
                                           perr, sizeof perr) != 0) {
            snprintf(errstr, errlen, "notify: %s", perr);
            goto fail;
        }
    }
    c->town = cfg->town;
    c->both = cfg->channels && strcmp(cfg->channels, "both") == 0;
    c->require_consent = cfg->require_consent;
    char dir[4096];
    if (cfg->templates) snprintf(dir, sizeof dir, "%s", cfg->templates);
    else default_template_dir(dir, sizeof dir);
    char terr[512];
    if (notify_templates_load(&c->tpl, dir, terr, sizeof terr) != 0) {
        snprintf(errstr, errlen, "notify: templates: %s", terr);
        goto fail;
    }
    *ctxp = c;
    return 0;
fail:
    notify_destroy(c);
    return -1;
}

static int notify_start(void *ctx, char *errstr, size_t errlen)
{
    return 0;
}

static void notify_stop(void *ctx)
{
}

static void notify_destroy(void *ctx)
{
    notify_ctx *c = ctx;
    if (!c) return;
    notify_templates_free(&c->tpl);
    if (c->curl_inited) curl_global_cleanup();
    free(c);
}

/* ---- deliver ---------------------------------------------------------------- */

enum { CH_EMAIL = 0, CH_SMS = 1, CH_COUNT };
static const char *const ch_names[CH_COUNT] = { "email", "sms" };

static void state_key(const char *prefix, const char *id, char *out, size_t len)
{
    if (strlen(prefix) + strlen(id) <= 200 && snprintf(out, len, "%s%s", prefix, id) < (int)len) return;
    char hex[65];
    relais_sha256_hex(id, strlen(id), hex);
    snprintf(out, len, "%ssha256:%s", prefix, hex);
}

static const char *str_at(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? s : NULL;
}

/* What the state keeps about a request, from its created event. NULL when
 * the requester left neither an email nor a mobile (or on out of memory). */
static json_t *contact_from_created(const notify_ctx *c, const char *subject, json_t *data)
{
    json_t *contact = json_object_get(json_object_get(data, "requester"), "contact");
    const char *email = str_at(contact, "email"), *mobile = str_at(contact, "mobile");
    if (!email && !mobile) return NULL;
    json_t *st = json_object();
    if (!st) return NULL;
    if (email) json_object_set_new(st, "email", json_string(email));
    if (mobile) json_object_set_new(st, "mobile", json_string(mobile));
    const char *pref = str_at(contact, "preferred_channel");
    if (pref) json_object_set_new(st, "preferred_channel", json_string(pref));
    json_t *consent = json_object_get(contact, "consent");
    if (json_is_object(consent)) json_object_set(st, "consent", consent);
    char number[160], address[400];
    notify_request_number(subject, str_at(data, "tracking_code"), number, sizeof number);
    json_object_set_new(st, "number", json_string(number));
    static const char *const kept[] = { "category", "title" };
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++) {
        const char *v = str_at(data, kept[i]);
        if (v) json_object_set_new(st, kept[i], json_string(v));
    }
    notify_address_text(json_object_get(json_object_get(data, "location"), "address"), address,
                        sizeof address);
    if (address[0]) json_object_set_new(st, "address", json_string(address));
    (void)c;
    return st;
}

/* Consent for channel ch: an explicit false always refuses. */
static int consented(const notify_ctx *c, const json_t *st, int ch)
{
    json_t *v = json_object_get(json_object_get(st, "consent"), ch_names[ch]);
    if (json_is_false(v)) return 0;
    return c->require_consent ? json_is_true(v) : 1;
}

typedef struct pick {
    int  use[CH_COUNT];
    int  n;
    char why[200];       /* when n == 0: why nothing is sent */
    relais_verdict none_verdict;
} pick;

static void choose(const notify_ctx *c, const json_t *st, pick *p)
{
    memset(p, 0, sizeof *p);
    p->none_verdict = RELAIS_DELIVER_OK;
    const char *addr[CH_COUNT] = { str_at(st, "email"), str_at(st, "mobile") };
    int transport[CH_COUNT] = { c->has_email, c->has_sms };
    int reach[CH_COUNT] = { 0, 0 };
    int refused = 0, notransport = 0, invalid = 0;
    for (int ch = 0; ch < CH_COUNT; ch++) {
        if (!addr[ch]) continue;
        if (!transport[ch]) notransport++;
        else if (!consented(c, st, ch)) refused++;
        else if (ch == CH_EMAIL ? !notify_email_valid(addr[ch]) : !notify_phone_valid(addr[ch])) invalid++;
        else reach[ch] = 1;
    }
    if (c->both) {
        for (int ch = 0; ch < CH_COUNT; ch++) p->use[ch] = reach[ch];
    } else {
        const char *pref = str_at(st, "preferred_channel");
        int chosen = -1;
        for (int ch = 0; ch < CH_COUNT && pref; ch++)
            if (strcmp(pref, ch_names[ch]) == 0 && reach[ch]) chosen = ch;
        if (chosen < 0) chosen = reach[CH_SMS] ? CH_SMS : reach[CH_EMAIL] ? CH_EMAIL : -1;
        if (chosen >= 0) p->use[chosen] = 1;
    }
    p->n = p->use[CH_EMAIL] + p->use[CH_SMS];
    if (p->n > 0) return;
    if (invalid) {
        p->none_verdict = RELAIS_DELIVER_REJECT;
        snprintf(p->why, sizeof p->why, "the contact's %s is not valid: nothing can be sent",
                 addr[CH_EMAIL] && !notify_email_valid(addr[CH_EMAIL]) ? "email address" : "mobile number");
    } else if (refused) {
        snprintf(p->why, sizeof p->why, "no consent for the contact's channel%s: nothing sent",
                 refused > 1 ? "s" : "");
    } else if (notransport) {
        snprintf(p->why, sizeof p->why, "the contact has only %s, which this instance does not send: nothing sent",
                 addr[CH_EMAIL] ? "an email address" : "a mobile number");
    } else {
        snprintf(p->why, sizeof p->why, "no contact for this request");
    }
}

static void set_answer(relais_answer *ans, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_answer(relais_answer *ans, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ans->status = status;
    vsnprintf(ans->detail, sizeof ans->detail, fmt, ap);
    ans->local_id[0] = '\0';
    va_end(ap);
}

/* The values of the placeholders for this event. Strings point into st,
 * data, c, or the caller's buffers. */
static void fill_values(const notify_ctx *c, notify_kind kind, const relais_event *ev, json_t *data,
                        const json_t *st, const char *vals[NOTIFY_PH_COUNT], char *date, size_t datelen,
                        char *deadline, size_t dlen)
{
    memset(vals, 0, sizeof(const char *) * NOTIFY_PH_COUNT);
    vals[NOTIFY_PH_NUMBER] = str_at(st, "number");
    vals[NOTIFY_PH_CATEGORY] = str_at(st, "category");
    vals[NOTIFY_PH_TITLE] = str_at(st, "title");
    vals[NOTIFY_PH_ADDRESS] = str_at(st, "address");
    vals[NOTIFY_PH_TOWN] = c->town;
    const char *when = kind == NOTIFY_CREATED ? str_at(data, "opened_at")
                     : kind == NOTIFY_UPDATED ? str_at(data, "updated_at") : str_at(data, "closed_at");
    notify_french_date(when ? when : relais_event_time(ev), date, datelen);
    vals[NOTIFY_PH_DATE] = date;
    deadline[0] = '\0';
    switch (kind) {
    case NOTIFY_CREATED:
        vals[NOTIFY_PH_STATUS_LABEL] = notify_status_label(str_at(data, "status"));
        notify_french_date(str_at(data, "deadline"), deadline, dlen);
        vals[NOTIFY_PH_DEADLINE] = deadline;
        break;
    case NOTIFY_UPDATED:
        vals[NOTIFY_PH_STATUS_LABEL] = notify_status_label(str_at(data, "status"));
        vals[NOTIFY_PH_COMMENT] = str_at(data, "comment");
        break;
    default:
        vals[NOTIFY_PH_STATUS_LABEL] = notify_status_label("closed");
        vals[NOTIFY_PH_ANSWER] = str_at(data, "answer");
        vals[NOTIFY_PH_OUTCOME_LABEL] = notify_outcome_label(str_at(data, "outcome"));
        break;
    }
}

static void send_one(const notify_ctx *c, int ch, notify_kind kind, const relais_event *ev,
                     const json_t *st, const char *const vals[NOTIFY_PH_COUNT], notify_result *r)
{
    char *subject = NULL, *body = NULL;
    const notify_tpl *t = ch == CH_EMAIL ? c->tpl.email[kind] : c->tpl.sms[kind];
    if (notify_tpl_render(t, vals, ch == CH_EMAIL ? &subject : NULL, &body) != 0) {
        memset(r, 0, sizeof *r);
        r->verdict = RELAIS_DELIVER_RETRY;
        snprintf(r->detail, sizeof r->detail, "%s: out of memory rendering the message", ch_names[ch]);
        return;
    }
    if (ch == CH_EMAIL) {
        notify_mail m = { .from = c->smtp.from, .from_name = c->from_name, .to = str_at(st, "email"),
                          .subject = subject, .body = body, .event_id = relais_event_id(ev),
                          .date = time(NULL) };
        size_t len = 0;
        char *msg = notify_build_message(&m, &len);
        if (!msg) {
            memset(r, 0, sizeof *r);
            r->verdict = RELAIS_DELIVER_RETRY;
            snprintf(r->detail, sizeof r->detail, "email: out of memory building the message");
        } else {
            notify_send_email(&c->smtp, m.to, msg, len, r);
        }
        free(msg);
    } else {
        /* SMS text: one paragraph per line is fine, the trailing newline is not */
        size_t n = strlen(body);
        while (n > 0 && body[n - 1] == '\n') body[--n] = '\0';
        notify_send_sms(&c->sms, str_at(st, "mobile"), body, relais_event_id(ev), r);
    }
    free(subject);
    free(body);
}

static relais_verdict notify_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                     relais_answer *ans)
{
    notify_ctx *c = ctx;
    memset(ans, 0, sizeof *ans);
    notify_kind kind;
    const char *type = relais_event_type(ev);
    if (notify_kind_of_type(type, &kind) != 0) {
        set_answer(ans, 0, "nothing to tell the citizen for %s", type);
        return RELAIS_DELIVER_OK;
    }
    const char *subject = relais_event_subject(ev);
    if (!subject || !*subject) {
        set_answer(ans, 0, "%s without a subject: no request to tell about", type);
        return RELAIS_DELIVER_OK;
    }
    json_t *data = relais_event_data(ev);
    if (kind == NOTIFY_UPDATED) {
        const char *vis = str_at(data, "comment_visibility");
        if (!str_at(data, "comment")) {
            set_answer(ans, 0, "%s", "no comment in this update: nothing to tell the citizen");
            return RELAIS_DELIVER_OK;
        }
        if (vis && strcmp(vis, "public") != 0) {
            set_answer(ans, 0, "%s", "internal comment: nothing sent to the citizen");
            return RELAIS_DELIVER_OK;
        }
    }

    char key[256];
    state_key("contact/", subject, key, sizeof key);
    json_t *st = NULL;
    if (kind == NOTIFY_CREATED) {
        st = contact_from_created(c, subject, data);
        if (!st) {
            set_answer(ans, 0, "%s", "no contact for this request");
            return RELAIS_DELIVER_OK;
        }
        if (relais_state_put(c->inst, key, st) != 0) {
            json_decref(st);
            set_answer(ans, 0, "%s", "cannot keep the contact: journal unavailable, will retry");
            return RELAIS_DELIVER_RETRY;
        }
    } else {
        int err = 0;
        st = relais_state_get(c->inst, key, &err);
        if (!st) {
            if (err) {
                set_answer(ans, 0, "%s", "cannot read the contact: journal unavailable, will retry");
                return RELAIS_DELIVER_RETRY;
            }
            set_answer(ans, 0, "%s", "no contact for this request");
            return RELAIS_DELIVER_OK;
        }
    }

    pick p;
    choose(c, st, &p);
    if (p.n == 0) {
        set_answer(ans, 0, "%s", p.why);
        json_decref(st);
        return p.none_verdict;
    }

    /* with two channels, a retry sends only what has not gone out yet */
    char sentkey[128];
    json_t *sent = NULL;
    state_key("sent/", relais_event_id(ev), sentkey, sizeof sentkey);
    if (p.n > 1) {
        int err = 0;
        sent = relais_state_get(c->inst, sentkey, &err);
        if (!sent && err) {
            json_decref(st);
            set_answer(ans, 0, "%s", "cannot read what was sent: journal unavailable, will retry");
            return RELAIS_DELIVER_RETRY;
        }
    }
    const char *vals[NOTIFY_PH_COUNT];
    char date[64], deadline[64];
    fill_values(c, kind, ev, data, st, vals, date, sizeof date, deadline, sizeof deadline);

    int nok = 0, nretry = 0, nreject = 0, last_status = 0, changed = 0;
    notify_buf detail = { 0 };
    for (int ch = 0; ch < CH_COUNT; ch++) {
        if (!p.use[ch]) continue;
        const char *before = json_string_value(json_object_get(sent, ch_names[ch]));
        notify_result r;
        if (before) {
            memset(&r, 0, sizeof r);
            r.verdict = strcmp(before, "ok") == 0 ? RELAIS_DELIVER_OK : RELAIS_DELIVER_REJECT;
            snprintf(r.detail, sizeof r.detail, "%s already %s on an earlier attempt", ch_names[ch],
                     r.verdict == RELAIS_DELIVER_OK ? "sent" : "refused");
        } else {
            send_one(c, ch, kind, ev, st, vals, &r);
            if (r.verdict != RELAIS_DELIVER_RETRY) {
                if (!sent) sent = json_object();
                json_object_set_new(sent, ch_names[ch],
                                    json_string(r.verdict == RELAIS_DELIVER_OK ? "ok" : "refused"));
                changed = 1;
            }
            relais_instance_log(c->inst, r.verdict == RELAIS_DELIVER_OK ? RELAIS_LOG_INFO : RELAIS_LOG_WARN,
                                "%s %s: %s", notify_kind_name(kind), subject, r.detail);
        }
        if (r.status) last_status = r.status;
        nok += r.verdict == RELAIS_DELIVER_OK;
        nretry += r.verdict == RELAIS_DELIVER_RETRY;
        nreject += r.verdict == RELAIS_DELIVER_REJECT;
        if (detail.len) notify_buf_adds(&detail, "; ");
        notify_buf_adds(&detail, r.detail);
    }
    relais_verdict v = nretry ? RELAIS_DELIVER_RETRY : nok ? RELAIS_DELIVER_OK : RELAIS_DELIVER_REJECT;
    if (v == RELAIS_DELIVER_RETRY && p.n > 1 && changed && sent
        && relais_state_put(c->inst, sentkey, sent) != 0)
        relais_instance_log(c->inst, RELAIS_LOG_WARN,
                            "%s %s: cannot record what was sent; a retry may send it again",
                            notify_kind_name(kind), subject);
    (void)nreject;
    /* the request is over: its contact is not kept any longer */
    if (kind == NOTIFY_CLOSED && v == RELAIS_DELIVER_OK) {
        json_t *gone = json_pack("{s:b}", "erased", 1);
        if (!gone || relais_state_put(c->inst, key, gone) != 0)
            relais_instance_log(c->inst, RELAIS_LOG_WARN, "%s: could not erase the contact from the state",
                                subject);
        json_decref(gone);
    }
    char *d = notify_buf_take(&detail, NULL);
    ans->status = last_status;
    snprintf(ans->detail, sizeof ans->detail, "%s", d ? d : "out of memory");
    ans->local_id[0] = '\0';
    free(d);
    json_decref(sent);
    json_decref(st);
    (void)local_id;
    return v;
}

const relais_connector relais_connector_notify = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name        = "notify",
    .description = "tells the citizen about their GRC request: email (SMTP) and SMS (HTTP gateway), French templates",
    .modes       = RELAIS_MODE_SINK,
    .options     = notify_options,
    .config_size = sizeof(notify_config),
    .init        = notify_init,
    .start       = notify_start,
    .receive     = NULL,
    .deliver     = notify_deliver,
    .stop        = notify_stop,
    .destroy     = notify_destroy,
    .deliver_batch = NULL,
};
