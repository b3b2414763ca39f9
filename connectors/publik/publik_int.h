/*
 * publik_int.h - internals of the `publik` connector (Publik w.c.s., the
 * GRC side), shared by its files and by relais-sim-publik:
 *
 *   publik.c         the descriptor, the option table, init/start/stop/destroy
 *   publik_sign.c    signed URLs (SPEC section 3): query strings, signing,
 *                    checking exactly as w.c.s. does, the nonce memory;
 *                    pure but for the nonce's random bytes; fuzzed by
 *                    tests/fuzz/fuzz_publik_sig.c
 *   publik_wcs.c     the {err, data} envelope, form exports -> change
 *                    records (record ids, echoes), local ids "<slug>/<id>";
 *                    pure; fuzzed by tests/fuzz/fuzz_publik_form.c
 *   publik_client.c  signed HTTP calls to w.c.s. (libcurl), for the source's
 *                    polling and the sink
 *   publik_source.c  the source: polling of the forms lists, and the webhook
 *                    w.c.s. calls (libmicrohttpd)
 *   publik_sink.c    the sink: global-action hooks and form submissions
 *   sim_publik.c     relais-sim-publik, a w.c.s. simulator
 *
 * The interface is summarised in /work/shared/fixtures/wcs/SPEC.md (see
 * README.md). No global mutable state: everything lives in per-instance
 * contexts; the nonce memory has its own lock.
 */
#ifndef RELAIS_PUBLIK_INT_H
#define RELAIS_PUBLIK_INT_H
#include <stddef.h>
#include <time.h>
#include <jansson.h>
#include "relais/connector.h"

/* ---- Options (publik.c) ---------------------------------------------------- */

typedef struct relais_publik_config {
    /* both */
    char  *url;            /* w.c.s. site root, "https://demarches.example.org" */
    char  *orig;           /* API access Relais signs with */
    char  *key;            /* its key */
    char **formdefs;       /* slugs: polled / accepted (source); first = where new forms go (sink) */
    long   timeout;        /* ms, whole call */
    char  *tls_ca_file;    /* PEM CA file for https:// (NULL: the system's store) */
    int    tls_verify;     /* 0: no certificate check (warned at start) */
    /* source */
    long   poll_interval;  /* ms; 0: no polling */
    char  *listen;         /* webhook "127.0.0.1:8090"; NULL: no webhook */
    char  *port_file;
    char  *path;           /* "/publik/webhook" */
    char  *webhook_orig;   /* what w.c.s. puts as orig= in its webservice call */
    char  *webhook_key;    /* the "request signature key" of that call */
    char  *self_user;      /* evolution author that means "Relais wrote it" (default: orig) */
    long   max_body;       /* bytes */
    /* sink */
    char  *hook;           /* global-action hook fired for updates ("relais-update") */
} relais_publik_config;

/* ---- Query strings (publik_sign.c) ---------------------------------------- */

typedef struct relais_publik_param {
    char  *name;       /* decoded (percent escapes, '+' as space) */
    char  *value;      /* decoded; "" when the chunk had no '=' */
    int    has_nul;    /* a %00 in name or value: such a value never matches anything */
} relais_publik_param;

typedef struct relais_publik_query {
    relais_publik_param *p;
    size_t               n;
} relais_publik_query;

/* Split a raw query string (no leading '?') on '&' and decode each chunk as
 * Python's parse_qsl does (invalid escapes kept as they are). Empty chunks
 * are skipped. 0 ok, -1 out of memory (q then empty). */
int  relais_publik_query_parse(const char *qs, size_t len, relais_publik_query *q);
void relais_publik_query_free(relais_publik_query *q);     /* NULL-safe */
/* The value of the single parameter `name`: NULL when absent, when given
 * more than once (then *count > 1) or when it holds a NUL. count may be NULL. */
const char *relais_publik_query_get(const relais_publik_query *q, const char *name, int *count);

/* Percent-encode s as Python's quote() (safe: letters, digits, "_.-~" and
 * the characters of `safe`) or, with plus, as quote_plus() (space -> '+').
 * Returns a malloc'd string, NULL when out of memory. */
char *relais_publik_pct_encode(const char *s, const char *safe, int plus);

/* ---- Signed URLs (publik_sign.c) ------------------------------------------ */

#define RELAIS_PUBLIK_WINDOW_S 30        /* timestamp tolerance and nonce memory */
#define RELAIS_PUBLIK_TS_FORMAT "%Y-%m-%dT%H:%M:%SZ"

/* w.c.s.'s texts (err_desc of the 403), in its order of checks */
#define RELAIS_PUBLIK_E_UNSIGNED   "Unsigned API call."
#define RELAIS_PUBLIK_E_ORIG_MISS  "Missing/multiple orig field."
#define RELAIS_PUBLIK_E_ORIG       "Invalid orig."
#define RELAIS_PUBLIK_E_ALGO_MISS  "Missing/multiple algo field."
#define RELAIS_PUBLIK_E_ALGO       "Invalid algo."
#define RELAIS_PUBLIK_E_SIGNATURE  "Invalid signature."
#define RELAIS_PUBLIK_E_TS_MISS    "Missing/multiple timestamp field."
#define RELAIS_PUBLIK_E_NONCE      "Nonce already used."

/* HMAC(key, data) with the hash `algo` (an OpenSSL digest name or a
 * Python hashlib name: sha1, sha256, sha512, md5, sha3_256, blake2b...),
 * base64 (standard alphabet, padded) into out. 0 ok, -1 unknown algo or
 * crypto error. */
int relais_publik_hmac_b64(const char *algo, const char *key, const void *data, size_t len,
                           char *out, size_t outlen);

/* Sign a query as the w.c.s. signer does: append
 * "algo=<algo>&timestamp=<UTC now, %3A colons>&nonce=<nonce>" (after '&'
 * unless query is empty), then "&signature=" + quote(base64 HMAC) with '/'
 * left raw. nonce NULL: 128 random bits in hex without zero padding.
 * query must already hold orig= (and email=/NameID= when wanted).
 * Returns a malloc'd string, NULL on an unknown algo or out of memory. */
char *relais_publik_sign_query(const char *query, const char *key, const char *algo,
                               time_t now, const char *nonce);

/* Nonces seen in the last window (w.c.s. keeps them 30 s). Thread-safe.
 * At most `max` are kept (0: 100000); when full of live nonces, a new one
 * is refused as if replayed. */
typedef struct relais_publik_nonces relais_publik_nonces;
relais_publik_nonces *relais_publik_nonces_new(long window_s, size_t max);
void relais_publik_nonces_destroy(relais_publik_nonces *n);   /* NULL-safe */
/* 0: first use within the window (remembered until now + window);
 * 1: seen already (or memory full); -1: out of memory. */
int relais_publik_nonce_use(relais_publik_nonces *n, const char *nonce, time_t now);

/* The key of a caller, or NULL when `orig` is unknown. */
typedef const char *(*relais_publik_key_fn)(void *arg, const char *orig);

typedef struct relais_publik_verify_opts {
    relais_publik_key_fn  key_for;
    void                 *arg;
    relais_publik_nonces *nonces;    /* NULL: no replay check */
    time_t                now;       /* the clock (tests inject it) */
    long                  window_s;  /* 0: RELAIS_PUBLIK_WINDOW_S */
    int                   all_algos; /* 1: every hash hashlib guarantees (w.c.s.);
                                        0: only sha1, sha256, sha512 (Relais) */
} relais_publik_verify_opts;

typedef enum relais_publik_sig {
    RELAIS_PUBLIK_SIG_OK = 0,
    RELAIS_PUBLIK_SIG_UNSIGNED,   /* no query, or no single `signature` parameter */
    RELAIS_PUBLIK_SIG_REFUSED     /* a check failed: err holds w.c.s.'s err_desc */
} relais_publik_sig;

/* Check a raw query string (bytes after '?', as received) exactly as
 * w.c.s.'s is_url_signed(): orig, key, algo, signature (HMAC over the
 * bytes before the first "&signature=", compared in constant time with
 * the padded standard base64), timestamp (within the window, either way),
 * nonce (not seen within the window). orig_out (may be NULL) receives
 * the caller's orig when OK. */
relais_publik_sig relais_publik_verify(const char *qs, size_t len, const relais_publik_verify_opts *o,
                                       char *err, size_t errlen, char *orig_out, size_t origlen);

/* Parse a timestamp as Python's strptime(ts, "%Y-%m-%dT%H:%M:%SZ") does
 * (one-digit fields, any letter case for T and Z). 0 ok with *out (UTC);
 * -1 with err = Python's ValueError text. */
int relais_publik_parse_timestamp(const char *ts, time_t *out, char *err, size_t errlen);

/* ---- The {err, data} envelope (publik_wcs.c) -------------------------------- */

typedef enum relais_publik_env_kind {
    RELAIS_PUBLIK_ENV_OK = 0,     /* an object with err 0 (or false) */
    RELAIS_PUBLIK_ENV_ERR,        /* an object with err != 0 */
    RELAIS_PUBLIK_ENV_BARE,       /* JSON without envelope: an array, an object without err */
    RELAIS_PUBLIK_ENV_MALFORMED   /* not JSON, or err neither integer >= 0 nor boolean */
} relais_publik_env_kind;

typedef struct relais_publik_env {
    relais_publik_env_kind kind;
    json_t     *root;        /* owned; NULL when MALFORMED */
    long        err;
    const char *err_desc;    /* borrowed from root; NULL when absent or null */
    const char *err_class;
    const char *err_code;
    json_t     *data;        /* borrowed; NULL when absent */
    char        error[256];  /* MALFORMED: why */
} relais_publik_env;

/* Parse a reply body (need not be NUL-terminated; safe JSON parsing). Fills
 * *env (release with relais_publik_env_free, also after MALFORMED). */
relais_publik_env_kind relais_publik_env_parse(const char *body, size_t len, relais_publik_env *env);
void relais_publik_env_free(relais_publik_env *env);   /* NULL-safe */
/* One line for a journal detail: "HTTP 403 access-denied: Invalid signature."
 * (err_code, else err_class; err_desc, else the body's first bytes). */
void relais_publik_env_describe(const relais_publik_env *env, long http_status, const char *body,
                                size_t len, char *buf, size_t buflen);

/* An error body as w.c.s. gives it: {"err":1,"err_class","err_code","err_desc"}
 * (err_desc null when desc is NULL). New reference. */
json_t *relais_publik_error_body(const char *err_class, const char *err_code, const char *desc);

/* ---- Forms -> change records (publik_wcs.c) --------------------------------- */

#define RELAIS_PUBLIK_MAX_SLUG 100
#define RELAIS_PUBLIK_MAX_ID   64

/* 0 when s is a formdef slug as w.c.s. makes them: 1..100 of [a-z0-9_-]. */
int relais_publik_slug_ok(const char *s);
/* 0 when s is a form id usable in a URL: 1..64 of [A-Za-z0-9_-]. */
int relais_publik_id_ok(const char *s);
/* Split a local id "<slug>/<id>"; 0 ok, -1 when malformed. */
int relais_publik_local_split(const char *local, char *slug, size_t slen, char *id, size_t idlen);
/* The slug of a form export, from its api_url (".../api/forms/<slug>/<id>/")
 * or url (".../<slug>/<id>/"); 0 ok, -1 when neither gives a valid one. */
int relais_publik_form_slug(const json_t *form, char *slug, size_t slen);
/* The id of a form export ("id": string or integer); 0 ok, -1 invalid. */
int relais_publik_form_id(const json_t *form, char *id, size_t idlen);

/* One change of one form, ready to submit: the first evolution entry is the
 * creation ("<slug>/<id>/created", fr.relais.grc.request.created.v1), each
 * later entry that sets a status or carries a comment is an update
 * ("<slug>/<id>/<index>", fr.relais.grc.request.updated.v1). */
typedef struct relais_publik_change {
    char    record_id[RELAIS_PUBLIK_MAX_SLUG + RELAIS_PUBLIK_MAX_ID + 32];
    int     created;    /* 1: the creation */
    int     echo;       /* 1: written by self_user (Relais): not to be submitted */
    json_t *record;     /* owned: the record the mapping reads (see README.md) */
} relais_publik_change;

typedef struct relais_publik_changes {
    char                  slug[RELAIS_PUBLIK_MAX_SLUG + 1];
    char                  id[RELAIS_PUBLIK_MAX_ID + 1];
    size_t                n;
    relais_publik_change *c;
} relais_publik_changes;

#define RELAIS_PUBLIK_TYPE_CREATED "fr.relais.grc.request.created.v1"
#define RELAIS_PUBLIK_TYPE_UPDATED "fr.relais.grc.request.updated.v1"

/* The changes of a form export (a read, a full=on list item or a webhook
 * body). slug: NULL to take it from the export. self_user: NULL for none.
 * Each record is
 *   {"change": "created"|"updated", "record_id", "formdef", "form_id",
 *    "index", "status", "previous_status" (updates), "time", "comment",
 *    "who", "form": <the export without file contents>}
 * and has no "subject" yet (the caller adds it, after the cross-reference
 * lookup). 0 ok (out filled, maybe with no change: a draft or a form
 * without history); -1 with err when the export is not a usable form. */
int  relais_publik_form_changes(const json_t *form, const char *slug, const char *self_user,
                                relais_publik_changes *out, char *err, size_t errlen);
void relais_publik_changes_free(relais_publik_changes *c);   /* NULL-safe */

/* A copy of a form export without file contents (every object with
 * "filename" and "content" loses "content"). New reference. */
json_t *relais_publik_strip_files(const json_t *form);

/* ---- Signed calls to w.c.s. (publik_client.c) ------------------------------- */

typedef struct relais_publik_client relais_publik_client;

typedef struct relais_publik_reply {
    long   status;           /* HTTP status; 0 on a transport error */
    char   error[256];       /* transport error (curl's text) */
    char  *body;             /* NUL-terminated; NULL when none */
    size_t len;
    int    truncated;        /* the body was longer than the cap */
} relais_publik_reply;

/* From cfg: url (http:// or https:// site root; a path prefix is kept),
 * orig, key, timeout, tls_ca_file and tls_verify (copied; cfg may go after).
 * Calls go out under inst's outgoing policy (hub/httputil.h: the hub's
 * outgoing.allow, TLS settings; inst may be NULL in tests).
 * Thread-safe once made: calls borrow pooled curl handles. */
relais_publik_client *relais_publik_client_new(const relais_instance *inst, const relais_publik_config *cfg,
                                               char *errstr, size_t errlen);
void relais_publik_client_destroy(relais_publik_client *c);   /* NULL-safe */
/* method "GET" or "POST"; path from the site root ("/api/formdefs/");
 * params: encoded query parameters without orig and signature (may be
 * NULL); body: JSON text or NULL; idem: Idempotency-Key or NULL. The query
 * gets orig=<orig> and is signed (sha256) at call time.
 * 0: an HTTP answer came (out->status set); -1: transport error (out->error). */
int  relais_publik_call(relais_publik_client *c, const char *method, const char *path,
                        const char *params, const char *body, const char *idem,
                        relais_publik_reply *out);
void relais_publik_reply_free(relais_publik_reply *r);       /* NULL-safe */

/* ---- Source and sink halves ------------------------------------------------- */

typedef struct relais_publik_source relais_publik_source;
typedef struct relais_publik_sink relais_publik_sink;

relais_publik_source *relais_publik_source_new(relais_instance *inst, const relais_publik_config *cfg,
                                               char *errstr, size_t errlen);
int  relais_publik_source_start(relais_publik_source *s, char *errstr, size_t errlen);
/* One polling round if poll_interval has passed (or force). 0 ok, -1 when a
 * formdef could not be read or the hub was unavailable (checkpoint kept). */
int  relais_publik_source_poll(relais_publik_source *s, int force);
int  relais_publik_source_port(const relais_publik_source *s);
void relais_publik_source_stop(relais_publik_source *s);
void relais_publik_source_destroy(relais_publik_source *s);

relais_publik_sink *relais_publik_sink_new(relais_instance *inst, const relais_publik_config *cfg,
                                           char *errstr, size_t errlen);
relais_verdict relais_publik_sink_deliver(relais_publik_sink *s, const relais_event *ev,
                                          const char *local_id, relais_answer *ans);
void relais_publik_sink_destroy(relais_publik_sink *s);

typedef struct relais_publik_ctx {
    unsigned              mode;
    relais_publik_source *source;
    relais_publik_sink   *sink;
} relais_publik_ctx;

/* The webhook's bound port of a started source context; -1 otherwise. */
int relais_publik_ctx_port(const void *ctx);

#endif
