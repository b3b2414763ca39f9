/*
 * notify_int.h - internals of the `notify` connector (tells the citizen),
 * shared by its files:
 *
 *   notify.c        the descriptor, the option table, init/destroy and
 *                   deliver(): which event says what to whom, the citizen's
 *                   contact kept in the package state, channel choice,
 *                   verdicts
 *   notify_tpl.c    message templates: the {{placeholder}} parser (pure,
 *                   fuzzed by tests/fuzz/fuzz_notify_template.c), loading a
 *                   template folder, rendering
 *   notify_text.c   pure text helpers: French labels and dates, the request
 *                   number, masking of addresses and numbers, RFC 5322
 *                   message building (RFC 2047 headers, quoted-printable)
 *   notify_send.c   the two transports with libcurl: SMTP and the SMS
 *                   gateway's HTTP API; each maps its answer to a verdict
 *   notify_smtpd.c  the SMTP server side used by relais-sim-smtp (command
 *                   parser and session state machine, message decoding),
 *                   pure so that it is fuzzed (fuzz_notify_smtp.c)
 *
 * No global mutable state: everything lives in the per-instance context.
 */
#ifndef RELAIS_NOTIFY_INT_H
#define RELAIS_NOTIFY_INT_H
#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include "relais/connector.h"
#include "httputil.h"

/* ---- A growable string (notify_text.c) ------------------------------------- */

/* Zero-initialised it is empty; after an allocation failure `oom` is set and
 * further appends do nothing. Capped at NOTIFY_BUF_MAX bytes (then oom). */
typedef struct notify_buf {
    char  *p;
    size_t len, cap;
    int    oom;
} notify_buf;

#define NOTIFY_BUF_MAX (4u * 1024 * 1024)

void notify_buf_add(notify_buf *b, const char *s, size_t n);
void notify_buf_adds(notify_buf *b, const char *s);
void notify_buf_addc(notify_buf *b, char c);
/* The NUL-terminated text (caller frees), its length in *len when len is not
 * NULL; NULL after an allocation failure. b is empty afterwards. */
char *notify_buf_take(notify_buf *b, size_t *len);

/* ---- Configuration (filled by the option table) --------------------------- */

typedef struct notify_config {
    char *smtp_url;         /* smtp://host:port or smtps://host:port; NULL: no email */
    char *mail_from;        /* envelope and From: address */
    char *mail_from_name;   /* From: display name, may be NULL */
    char *smtp_tls;         /* none|try|required (STARTTLS) */
    char *smtp_user;        /* SMTP AUTH, may be NULL */
    char *smtp_password;    /* secret */
    char *sms_url;          /* http(s) URL of the gateway's send endpoint; NULL: no SMS */
    char *sms_key;          /* secret, sent in sms_key_header */
    char *sms_key_header;   /* "X-API-Key" */
    char *sms_sender;       /* sender name shown on the phone */
    char *town;             /* {{town}} */
    char *channels;         /* preferred|both */
    char *templates;        /* folder; NULL: the built-in one */
    long  timeout;          /* ms, per transport exchange */
    int   require_consent;  /* 1: send only on channels with consent.<channel> true */
    char *tls_ca_file;      /* PEM CA file for the relay and the gateway; NULL: the system's */
    int   tls_verify;       /* 0: no TLS verification (explicit, warned at start) */
} notify_config;

/* ---- Templates (notify_tpl.c) ---------------------------------------------- */

typedef enum notify_kind {
    NOTIFY_CREATED = 0,     /* grc.request.created: acknowledgement */
    NOTIFY_UPDATED,         /* grc.request.updated with a public comment */
    NOTIFY_CLOSED,          /* grc.request.closed: the answer */
    NOTIFY_KIND_COUNT
} notify_kind;

typedef enum notify_ph {
    NOTIFY_PH_NUMBER = 0,   /* the request number (tracking code or subject id) */
    NOTIFY_PH_STATUS_LABEL, /* "en cours de traitement" */
    NOTIFY_PH_CATEGORY,     /* as the GRC labels it */
    NOTIFY_PH_TITLE,
    NOTIFY_PH_ADDRESS,      /* "12 bis rue des Tanneurs, 35999 Villebrune" */
    NOTIFY_PH_TOWN,         /* option town */
    NOTIFY_PH_DATE,         /* date of the event's fact, "5 mars 2026" */
    NOTIFY_PH_DEADLINE,     /* created only */
    NOTIFY_PH_COMMENT,      /* updated only */
    NOTIFY_PH_ANSWER,       /* closed only */
    NOTIFY_PH_OUTCOME_LABEL,/* closed only, "résolue" */
    NOTIFY_PH_COUNT
} notify_ph;

const char *notify_ph_name(notify_ph ph);
/* The placeholders a template of that kind may use (bit i: notify_ph i). */
unsigned notify_kind_placeholders(notify_kind k);
/* "grc.request.created" ... */
const char *notify_kind_name(notify_kind k);
/* The kind of an event type ("fr.relais.grc.request.created.v1",
 * "grc.request.created"): 0 with *out set, -1 when it is none of the three. */
int notify_kind_of_type(const char *type, notify_kind *out);

/* Longest template file (bytes). */
#define NOTIFY_TPL_MAX (16 * 1024)

typedef struct notify_tpl notify_tpl;

/* Parse a template text. `name` (the file name) and 1-based lines are used
 * in error messages: "request.created.txt:3: unknown placeholder {{nombre}}
 * (known: number, ...)". `allowed`: the placeholders this template may use
 * (others known but not allowed are an error naming the event type, for
 * which `kind` is used). with_subject: the first line must be
 * "Subject: ..." (email templates). Syntax: {{name}} with optional blanks
 * inside the braces; "{{" always opens a placeholder; text is UTF-8.
 * NULL with the message in err. Never reads beyond len. */
notify_tpl *notify_tpl_parse(const char *name, const char *text, size_t len, notify_kind kind,
                             int with_subject, char *err, size_t errlen);
void notify_tpl_free(notify_tpl *t);   /* NULL: no-op */

/* Render with vals[notify_ph] (NULL or "" = no value). A line with
 * placeholders that all have no value is left out; leading and trailing
 * blank lines of the body are dropped; lines end with "\n". *subject (only
 * for templates with a subject; control characters become spaces) and
 * *body are new strings. 0, or -1 out of memory. */
int notify_tpl_render(const notify_tpl *t, const char *const vals[NOTIFY_PH_COUNT],
                      char **subject, char **body);

typedef struct notify_templates {
    notify_tpl *email[NOTIFY_KIND_COUNT];  /* request.<verb>.txt */
    notify_tpl *sms[NOTIFY_KIND_COUNT];    /* request.<verb>.sms.txt */
} notify_templates;

/* Load the six templates of folder dir. 0, or -1 with "<dir>/<file>:<line>:
 * message" (or the missing file) in err; ts is then empty. */
int  notify_templates_load(notify_templates *ts, const char *dir, char *err, size_t errlen);
void notify_templates_free(notify_templates *ts);   /* NULL: no-op; leaves ts empty */

/* ---- Text helpers (notify_text.c) ------------------------------------------ */

/* French label of a canonical request status (new ... rejected), of a
 * closing outcome (resolved ... no_action); NULL when unknown. */
const char *notify_status_label(const char *status);
const char *notify_outcome_label(const char *outcome);

/* "2026-03-05T10:14:00+01:00" or "2026-03-05" -> "5 mars 2026" ("1er" for
 * the first of the month). "" when the text does not start with a valid date. */
void notify_french_date(const char *text, char *out, size_t outlen);
/* The canonical address object -> "12 bis rue des Tanneurs, 35999 Villebrune";
 * "" when none. */
void notify_address_text(const json_t *address, char *out, size_t outlen);
/* The request number: tracking_code when given, else the subject's id part
 * ("request/GRC-12" -> "GRC-12"); "" when neither. */
void notify_request_number(const char *subject, const char *tracking_code, char *out, size_t outlen);

/* Plausible addresses (no spaces, no control characters, nothing that could
 * break a header or an SMTP command). */
int notify_email_valid(const char *addr);
/* E.164 (+33612345678) or French national (0612345678). */
int notify_phone_valid(const char *num);
/* Masked for logs and details: "c***@e***.fr", "+33*******78". Never more
 * than what these examples show. */
void notify_mask_email(const char *addr, char *out, size_t outlen);
void notify_mask_phone(const char *num, char *out, size_t outlen);

/* One header field "Name: value\r\n" with value folded at 78 columns; a
 * value that is not printable ASCII is written as RFC 2047 encoded-words
 * (=?UTF-8?B?...?=, each at most 75 characters, split on character
 * boundaries). NULL on out of memory. */
char *notify_header_encode(const char *name, const char *value);
/* Quoted-printable (RFC 2045) of UTF-8 text: "\n" (or "\r\n") become CRLF
 * hard line breaks, lines at most 76 characters with soft breaks, '=',
 * non-ASCII bytes, control characters and trailing blanks encoded. */
char *notify_qp_encode(const char *text);

typedef struct notify_mail {
    const char *from;        /* address */
    const char *from_name;   /* may be NULL */
    const char *to;
    const char *subject;     /* UTF-8 */
    const char *body;        /* UTF-8, "\n" line ends */
    const char *event_id;    /* Message-ID <relais.<event_id>@<from domain>> */
    time_t      date;
} notify_mail;

/* The whole RFC 5322 message (CRLF line ends): Date, From, To, Subject,
 * Message-ID, Auto-Submitted, MIME-Version, Content-Type text/plain;
 * charset=UTF-8, Content-Transfer-Encoding: quoted-printable, body.
 * NULL on out of memory. */
char *notify_build_message(const notify_mail *m, size_t *len);
/* RFC 5322 date "Thu, 05 Mar 2026 09:14:00 +0000" (UTC, English names
 * whatever the locale). */
void notify_rfc5322_date(time_t t, char *out, size_t outlen);

/* ---- Transports (notify_send.c) -------------------------------------------- */

typedef struct notify_result {
    relais_verdict verdict;
    int  status;            /* SMTP reply code or HTTP status; 0 when none */
    char detail[240];       /* why, with the masked recipient; never the message */
    char id[64];            /* gateway message id, or the SMTP queue answer */
} notify_result;

typedef struct notify_smtp {
    const char *url;
    const char *from;
    const char *user, *password;   /* NULL: no AUTH */
    int         tls;               /* 0 none, 1 try, 2 required */
    long        timeout_ms;
    relais_http_policy policy;     /* smtp,smtps; the instance's TLS settings and outgoing.allow */
} notify_smtp;

typedef struct notify_sms {
    const char *url;
    const char *key_header;        /* "X-API-Key" */
    const char *key;
    const char *sender;
    long        timeout_ms;
    relais_http_policy policy;     /* http,https; the instance's TLS settings and outgoing.allow */
} notify_sms;

/* Send one message; verdicts: SMTP 2xx OK, 4xx / no answer / refused
 * connection / timeout RETRY, 5xx REJECT. Thread-safe. */
void notify_send_email(const notify_smtp *s, const char *to, const char *msg, size_t len,
                       notify_result *r);
/* POST {to, text, sender, reference} as JSON; 2xx OK (id from the answer's
 * "id"), 408/425/429/5xx/transport errors RETRY, other 4xx REJECT.
 * Thread-safe. */
void notify_send_sms(const notify_sms *s, const char *to, const char *text, const char *reference,
                     notify_result *r);

#endif
