/*
 * open311_int.h - internals of the `open311` connector (Open311 GeoReport v2,
 * both ways), shared by its files:
 *
 *   open311.c          the descriptor, the option table, init/start/stop/
 *                      destroy dispatching on role (server|client) and mode
 *   open311_form.c     pure: POST fields -> the vendor record (JSON), its
 *                      normalised hash, the service_request_id and token
 *                      derived from it, request checks against the
 *                      catalogue, W3C datetimes, id lists, form encoding
 *   open311_catalog.c  the service list and service definitions, read from
 *                      the `tables:` of the instance's mapping file
 *   open311_http.c     libmicrohttpd pieces shared by the server and the
 *                      simulator: the POSTed form, answers, URLs, daemon
 *   open311_render.c   pure: GeoReport answers as JSON text and as XML
 *                      (libxml2), the public view of a stored request, the
 *                      errors body, the client's parsers of JSON answers
 *   open311_server.c   role server, mode source: the GeoReport v2 endpoint
 *                      (libmicrohttpd), POST -> relais_submit, GET from the
 *                      package state
 *   open311_status.c   role server, mode sink: canonical grc.request.* events
 *                      -> the stored requests that the endpoint lists
 *   open311_client.c   role client: the sink POSTs requests to a GeoReport
 *                      v2 endpoint (libcurl); the source polls their status
 *   sim_open311.c      relais-sim-open311, a GeoReport v2 server for tests
 *
 * No global mutable state: everything lives in the per-instance contexts.
 * Package state keys (relais_state_*), per tenant and package:
 *   server  "request/<service_request_id>"  the stored request (see README.md)
 *   client  "req/<service_request_id>"      a request the client sink created
 *           "token/<token>"                 a POST answered with a token only
 */
#ifndef RELAIS_OPEN311_INT_H
#define RELAIS_OPEN311_INT_H
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <jansson.h>
#include <microhttpd.h>
#include "relais/connector.h"

/* ---- Options -------------------------------------------------------------- */

typedef struct o311_config {
    char  *role;             /* "server" | "client" */
    /* role server, source */
    char  *listen;           /* "127.0.0.1:8311"; port 0 picks a free one */
    char  *port_file;
    char  *path_prefix;      /* "" or "/open311/v2": stripped before routing */
    char  *base_url;         /* discovery's endpoint url; default http://<listen><prefix> */
    char  *api_keys;         /* secret: comma-separated accepted keys */
    char  *contact;          /* discovery texts */
    char  *key_service;
    long   max_body;
    long   max_connections;
    /* both roles */
    char  *jurisdiction_id;  /* server: the one served; client: the one sent */
    /* role client */
    char  *endpoint;         /* base URL of the GeoReport v2 API */
    char  *api_key;          /* secret sent with POST */
    long   timeout;          /* ms */
    long   connect_timeout;  /* ms */
    long   poll_interval;    /* ms */
    long   poll_batch;       /* ids per GET requests */
    char  *tls_ca_file;      /* PEM CA file for the endpoint; NULL: the system's */
    int    tls_verify;       /* 0: no TLS verification (explicit, warned at start) */
} o311_config;

/* Limits of what the server accepts in one POST. */
#define O311_MAX_FIELDS      200      /* form fields */
#define O311_MAX_VALUE       8000     /* bytes of one value */
#define O311_MAX_DESCRIPTION 4000     /* characters of description (spec) */
#define O311_LIST_DAYS       90       /* GET requests: default span and largest span */
#define O311_LIST_MAX        1000     /* GET requests: most requests answered */
#define O311_ID_LEN          15       /* digits of a service_request_id made by the server */
#define O311_TOKEN_LEN       32       /* hex digits of a token */

/* ---- Pure helpers (open311_form.c) ---------------------------------------- */

/* Add one POSTed field to the vendor record rec (a JSON object). Values are
 * trimmed; empty ones are dropped. "attribute[CODE]" goes to
 * rec.attribute.CODE (a text), "attribute[CODE][]" to a sorted list of texts
 * (multivaluelist). api_key is never stored (the caller reads it apart).
 * 0 ok; -1 with a message (invalid UTF-8 or NUL, too long, bad attribute
 * name, too many fields). */
int o311_form_add(json_t *rec, const char *key, const char *value, size_t vlen,
                  char *errstr, size_t errlen);

/* The SHA-256 (hex) of the normalised record: compact JSON with sorted keys
 * of the POSTed fields, without api_key (never stored), requested_datetime
 * and service_request_id (added by the server). Two POSTs of the same form,
 * whatever the field order, give the same hash. 0 / -1 (out of memory). */
int o311_record_hash(const json_t *rec, char hex[65]);
/* The service_request_id of a record hash: its first 8 bytes read as an
 * unsigned integer, modulo 10^15, written on 15 digits. */
void o311_id_from_hash(const char *hex, char out[O311_ID_LEN + 1]);
/* The token of a record hash: its first 32 hex digits. */
void o311_token_from_hash(const char *hex, char out[O311_TOKEN_LEN + 1]);
/* The id a token stands for (the same first 8 bytes). -1 when tok is not 32
 * lower-case hex digits. */
int o311_id_from_token(const char *tok, char out[O311_ID_LEN + 1]);

struct o311_catalog;
/* A POST's checks, as the spec lists them: service_code given and in the
 * catalogue, a location (lat and long, or address_string, or address_id),
 * lat/long numbers in range, description at most 4000 characters, every
 * required attribute of the service given. 0 ok; -1 with the spec's
 * description in errstr (answered 400). */
int o311_request_check(const struct o311_catalog *cat, const json_t *rec, char *errstr, size_t errlen);

/* W3C datetime (ISO 8601 profile) to Unix seconds: YYYY-MM-DD, or
 * YYYY-MM-DDThh:mm[:ss[.fraction]] with Z or +hh:mm/-hh:mm (none: UTC).
 * 0 ok, -1 invalid. */
int o311_parse_datetime(const char *s, int64_t *out);
/* Unix seconds -> "2026-11-25T10:00:00+01:00" in the process's local zone. */
void o311_format_datetime(time_t t, char *buf, size_t len);

/* A comma-separated list (service_request_id, status) -> a JSON array of
 * trimmed non-empty texts, at most max items; NULL when longer or when an
 * item is over 200 bytes. */
json_t *o311_split_csv(const char *s, size_t max);

/* The vendor record rendered by a client mapping (a JSON object) as an
 * application/x-www-form-urlencoded body: scalars as key=value, an object
 * (attribute) as attribute[CODE]=value, a list as attribute[CODE][]=v for
 * each item. api_key and jurisdiction_id are added when given. Newly
 * allocated (free()), NULL when out of memory or a value is an object
 * nested deeper. */
char *o311_form_encode(const json_t *fields, const char *api_key, const char *jurisdiction_id);

/* A state key: prefix + id; -1 when it does not fit in 200 bytes. */
int o311_state_key(char *buf, size_t len, const char *prefix, const char *id);

/* ---- The service catalogue (open311_catalog.c) ---------------------------- */

typedef struct o311_catalog {
    json_t *services;      /* the GET services answer: an array of service objects */
    json_t *definitions;   /* service_code -> the GET services/<code> answer */
    json_t *names;         /* service_code -> service_name */
    json_t *notices;       /* service_code -> service_notice */
    char    changeset[32]; /* "YYYY-MM-DD HH:MM", the file's time */
} o311_catalog;

/* Read the `tables:` of a mapping file (see README.md, "The service
 * list"). 0 ok; -1 with "FILE:LINE: message" in errstr. */
int  o311_catalog_load(const char *path, o311_catalog *out, char *errstr, size_t errlen);
int  o311_catalog_load_buffer(const char *name, const char *buf, size_t len, o311_catalog *out,
                              char *errstr, size_t errlen);
void o311_catalog_clear(o311_catalog *c);   /* NULL-safe; c itself is the caller's */

/* ---- Rendering and parsing answers (open311_render.c) --------------------- */

typedef enum o311_format { O311_JSON = 0, O311_XML = 1 } o311_format;

/* A GeoReport answer body: JSON (compact, reals with 15 digits) or XML
 * ("<?xml version="1.0" encoding="utf-8"?>", the root element `root`, array
 * items named after their container: services/service,
 * service_requests/request, errors/error, attributes/attribute,
 * values/value, endpoints/endpoint, formats/format; null an empty element).
 * Newly allocated (free()), NULL when out of memory. */
char *o311_render(const json_t *v, o311_format fmt, const char *root, size_t *len);
/* The errors body: [{"code": code, "description": text}]. */
json_t *o311_errors(int code, const char *description);
const char *o311_content_type(o311_format fmt);

/* The public view of a stored request (the spec's fields in the spec's order,
 * ids as texts, absent ones null). New reference. */
json_t *o311_public_request(const json_t *stored);

/* Client side: parse the JSON answer of a GeoReport server with the safe
 * parser (duplicate keys, depth, size and invalid JSON such as numbers with
 * leading zeros refused). */
/* POST requests: the first element's service_request_id and token (text or
 * integer; "" when absent). 0 when one of them is there; -1 with errstr. */
int o311_parse_post_answer(const char *body, size_t len, char *id, size_t idlen,
                           char *token, size_t toklen, char *errstr, size_t errlen);
/* GET requests / requests/<id> / tokens/<t>: an array of objects, each with
 * service_request_id as a text (a number is turned into its text, as are
 * token, address_id and zipcode). New reference or NULL with errstr. */
json_t *o311_parse_requests(const char *body, size_t len, char *errstr, size_t errlen);
/* An error body (JSON errors array): "code description" of the first error
 * into out; -1 when the body is not one. */
int o311_parse_errors(const char *body, size_t len, char *out, size_t outlen);


/* ---- libmicrohttpd pieces (open311_http.c) ------------------------------- */

typedef struct o311_field {
    char  *key;
    char  *val;       /* NUL-terminated after len bytes; NULL when empty */
    size_t len;
} o311_field;

/* A POSTed form read with libmicrohttpd's post processor; owned by one
 * connection thread. */
typedef struct o311_upload {
    struct MHD_PostProcessor *pp;
    o311_field *f;
    size_t      n, cap;
    size_t      bytes, max;
    int         bad_type, too_large, bad_form, too_many;
} o311_upload;

void o311_upload_begin(o311_upload *u, struct MHD_Connection *c, size_t max);
void o311_upload_feed(o311_upload *u, const char *data, size_t size);
void o311_upload_finish(o311_upload *u);
void o311_upload_free(o311_upload *u);       /* NULL-safe; u itself is the caller's */
/* What is wrong with the upload (status 400 or 413), NULL when nothing. */
const char *o311_upload_problem(const o311_upload *u, unsigned *status);

enum MHD_Result o311_reply(struct MHD_Connection *c, unsigned status, o311_format fmt, const json_t *v,
                           const char *root, int retry_after);
enum MHD_Result o311_reply_error(struct MHD_Connection *c, unsigned status, o311_format fmt,
                                 const char *description, int retry_after);
/* url = <prefix><path>.<json|xml>: path (without the extension) and format.
 * 0 ok; 1 not under prefix; 2 no known format (fmt is then JSON). */
int o311_split_url(const char *url, const char *prefix, char *path, size_t len, o311_format *fmt);
/* "/services/VOI-03" with base "/services" -> "VOI-03"; NULL when not that shape. */
const char *o311_path_arg(const char *path, const char *base);
/* Start a thread-per-connection daemon on "host:port"; *port is the bound one. */
struct MHD_Daemon *o311_listen(const char *listen, MHD_AccessHandlerCallback handler, void *cls,
                               MHD_RequestCompletedCallback done, unsigned conn_limit, int *port,
                               char *errstr, size_t errlen);
int o311_write_port_file(const char *file, int port, char *errstr, size_t errlen);

/* ---- The halves ------------------------------------------------------------ */

typedef struct o311_server o311_server;
typedef struct o311_status o311_status;
typedef struct o311_client o311_client;

o311_server *o311_server_new(relais_instance *inst, const o311_config *cfg, char *errstr, size_t errlen);
int  o311_server_start(o311_server *s, char *errstr, size_t errlen);
int  o311_server_port(const o311_server *s);
void o311_server_stop(o311_server *s);
void o311_server_destroy(o311_server *s);

o311_status *o311_status_new(relais_instance *inst, char *errstr, size_t errlen);
relais_verdict o311_status_deliver(o311_status *s, const relais_event *ev, const char *local_id,
                                   relais_answer *ans);
void o311_status_destroy(o311_status *s);

o311_client *o311_client_new(relais_instance *inst, const o311_config *cfg, unsigned mode,
                             char *errstr, size_t errlen);
int  o311_client_start(o311_client *c, char *errstr, size_t errlen);   /* source: poller thread */
relais_verdict o311_client_deliver(o311_client *c, const relais_event *ev, const char *local_id,
                                   relais_answer *ans);
/* One poll round now, on the caller's thread (the poller thread calls it
 * every poll_interval; tests call it directly). Returns the number of events
 * submitted (accepted or duplicate), -1 when the round stopped early (hub or
 * endpoint unavailable). */
int  o311_client_poll_once(o311_client *c);
void o311_client_stop(o311_client *c);
void o311_client_destroy(o311_client *c);

/* The connector context handed to the hub. */
typedef struct o311_ctx {
    relais_instance *inst;
    unsigned         mode;
    int              client;     /* role client */
    o311_server     *server;     /* role server, source */
    o311_status     *status;     /* role server, sink */
    o311_client     *cl;         /* role client, either mode */
} o311_ctx;

/* The bound port of a started server instance's context; -1 otherwise. */
int o311_ctx_port(const void *ctx);

#endif
