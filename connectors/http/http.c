/*
 * http.c - the generic `http` connector: descriptor, option table and the
 * lifecycle callbacks. A source instance is a webhook receiver
 * (http_source.c, libmicrohttpd); a sink instance POSTs each event as a
 * structured CloudEvent, or several as one batch when the instance's
 * batch_max > 1 (http_sink.c, libcurl). Body parsing and the
 * signature scheme are in http_body.c. Documentation: connectors/http/README.md.
 *
 * Threads: init/start/stop/destroy run on the hub's main thread; the source's
 * request threads belong to libmicrohttpd (see http_source.c); deliver() and
 * deliver_batch() run on the hub's delivery workers (see http_sink.c). This file owns no data
 * touched by those threads besides the immutable context pointers.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "http_int.h"

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK
#define OFF(f) offsetof(relais_http_config, f)

static const relais_option http_options[] = {
    /* source */
    { .name = "listen", .type = RELAIS_OPT_STR, .required = 1, .offset = OFF(listen),
      .modes = SRC, .desc = "address:port to listen on, e.g. 127.0.0.1:8081 or [::1]:8081; port 0 picks a free port" },
    { .name = "port_file", .type = RELAIS_OPT_STR, .offset = OFF(port_file), .modes = SRC,
      .desc = "file where the bound port is written after start (useful with port 0)" },
    { .name = "path", .type = RELAIS_OPT_STR, .def = "/events", .offset = OFF(path), .modes = SRC,
      .desc = "the only URL path accepted (POST)" },
    { .name = "event_type", .type = RELAIS_OPT_STR, .offset = OFF(event_type), .modes = SRC,
      .desc = "event type of records that are not CloudEvents and give no type_pointer value" },
    { .name = "type_pointer", .type = RELAIS_OPT_STR, .offset = OFF(type_pointer), .modes = SRC,
      .desc = "JSON pointer into a record giving its event type (falls back to event_type)" },
    { .name = "subject_pointer", .type = RELAIS_OPT_STR, .offset = OFF(subject_pointer), .modes = SRC,
      .desc = "JSON pointer into a record giving the subject, e.g. /request/id" },
    { .name = "record_id_pointer", .type = RELAIS_OPT_STR, .offset = OFF(record_id_pointer), .modes = SRC,
      .desc = "JSON pointer into a record giving its id (dedupe key); default: the Idempotency-Key header, else the SHA-256 of the data" },
    { .name = "correlation_pointer", .type = RELAIS_OPT_STR, .offset = OFF(correlation_pointer), .modes = SRC,
      .desc = "JSON pointer into a record giving the correlation id" },
    { .name = "hmac_secret", .type = RELAIS_OPT_SECRET, .offset = OFF(hmac_secret), .modes = SRC | SNK,
      .desc = "source: require a valid X-Relais-Signature and a new X-Relais-Nonce; sink: sign every body" },
    { .name = "hmac_tolerance", .type = RELAIS_OPT_DURATION, .def = "5m", .offset = OFF(hmac_tolerance),
      .modes = SRC, .desc = "largest accepted distance between the signature time and now; also the replay window of nonces" },
    { .name = "hmac_nonce_max", .type = RELAIS_OPT_INT, .def = "100000", .offset = OFF(hmac_nonce_max),
      .modes = SRC, .desc = "most nonces remembered within the replay window; when full, signed requests get 429 until the oldest expire" },
    { .name = "max_body", .type = RELAIS_OPT_SIZE, .def = "1MB", .offset = OFF(max_body), .modes = SRC,
      .desc = "largest request body (413 above)" },
    { .name = "max_batch", .type = RELAIS_OPT_INT, .def = "1000", .offset = OFF(max_batch), .modes = SRC,
      .desc = "most records in one request (413 above)" },
    { .name = "max_connections", .type = RELAIS_OPT_INT, .def = "128", .offset = OFF(max_connections),
      .modes = SRC, .desc = "most concurrent connections (one thread each)" },
    /* sink */
    { .name = "url", .type = RELAIS_OPT_URL, .required = 1, .offset = OFF(url), .modes = SNK,
      .desc = "http:// or https:// URL the events are POSTed to" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s", .offset = OFF(timeout), .modes = SNK,
      .desc = "whole request timeout (then RETRY)" },
    { .name = "connect_timeout", .type = RELAIS_OPT_DURATION, .def = "3s", .offset = OFF(connect_timeout),
      .modes = SNK, .desc = "TCP/TLS connect timeout" },
    { .name = "headers", .type = RELAIS_OPT_STRLIST, .offset = OFF(headers), .modes = SNK,
      .desc = "extra request headers, \"Name: value\"" },
    { .name = "auth_token", .type = RELAIS_OPT_SECRET, .offset = OFF(auth_token), .modes = SNK,
      .desc = "sent as Authorization: Bearer <token>" },
    { .name = "id_pointer", .type = RELAIS_OPT_STR, .offset = OFF(id_pointer), .modes = SNK,
      .desc = "JSON pointer into a 2xx response body giving the destination's local id, e.g. /id" },
    RELAIS_HTTP_TLS_OPTIONS(relais_http_config, SNK),
    { .name = NULL }
};

int relais_http_ctx_port(const void *ctx)
{
    const relais_http_ctx *c = ctx;
    if (!c || !c->source) return -1;
    return relais_http_source_port(c->source);
}

static int http_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const relais_http_config *cfg = config;
    relais_http_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    c->mode = relais_instance_mode(inst);
    if (c->mode == RELAIS_MODE_SOURCE) {
        c->source = relais_http_source_new(inst, cfg, errstr, errlen);
        if (!c->source) {
            free(c);
            return -1;
        }
    } else if (c->mode == RELAIS_MODE_SINK) {
        c->sink = relais_http_sink_new(inst, cfg, errstr, errlen);
        if (!c->sink) {
            free(c);
            return -1;
        }
    } else {
        snprintf(errstr, errlen, "http: mode must be source or sink");
        free(c);
        return -1;
    }
    *ctxp = c;
    return 0;
}

static int http_start(void *ctx, char *errstr, size_t errlen)
{
    relais_http_ctx *c = ctx;
    if (c->source) return relais_http_source_start(c->source, errstr, errlen);
    return 0;
}

static relais_verdict http_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                   relais_answer *ans)
{
    relais_http_ctx *c = ctx;
    if (!c->sink) {
        ans->status = 0;
        snprintf(ans->detail, sizeof ans->detail, "http: instance is not a sink");
        ans->local_id[0] = '\0';
        return RELAIS_DELIVER_REJECT;
    }
    return relais_http_sink_deliver(c->sink, ev, local_id, ans);
}

static void http_deliver_batch(void *ctx, const relais_event *const *evs,
                               const char *const *local_ids, size_t n, relais_verdict *verdicts,
                               relais_answer *ans)
{
    relais_http_ctx *c = ctx;
    if (!c->sink) {
        for (size_t i = 0; i < n; i++) {
            verdicts[i] = RELAIS_DELIVER_REJECT;
            ans[i].status = 0;
            snprintf(ans[i].detail, sizeof ans[i].detail, "http: instance is not a sink");
            ans[i].local_id[0] = '\0';
        }
        return;
    }
    relais_http_sink_deliver_batch(c->sink, evs, local_ids, n, verdicts, ans);
}

static void http_stop(void *ctx)
{
    relais_http_ctx *c = ctx;
    if (c && c->source) relais_http_source_stop(c->source);
}

static void http_destroy(void *ctx)
{
    relais_http_ctx *c = ctx;
    if (!c) return;
    relais_http_source_destroy(c->source);
    relais_http_sink_destroy(c->sink);
    free(c);
}

const relais_connector relais_connector_http = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name        = "http",
    .description = "generic HTTP: webhook source (JSON, batches, CloudEvents, HMAC) and POST sink",
    .modes       = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options     = http_options,
    .config_size = sizeof(relais_http_config),
    .init        = http_init,
    .start       = http_start,
    .receive     = NULL,
    .deliver     = http_deliver,
    .stop        = http_stop,
    .destroy     = http_destroy,
    .deliver_batch = http_deliver_batch,
};
