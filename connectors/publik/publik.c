/*
 * publik.c - the `publik` connector: the GRC side, Publik w.c.s.
 * (Entr'ouvert), through its published web services (the {err, data}
 * envelope, signed URLs). Descriptor, option table and lifecycle; the
 * source half (polling the forms lists, and the webhook w.c.s. calls on
 * each status change) is publik_source.c, the sink half (a form's
 * global-action hook, form submission) publik_sink.c. The translation
 * form <-> canonical request is the instance's mapping
 * (connectors/publik/mappings/request.yaml), required in both modes.
 * Documentation: connectors/publik/README.md.
 *
 * Threads: init/start/stop/destroy and receive() run on the hub's main
 * thread; the webhook's connection threads belong to libmicrohttpd
 * (publik_source.c); deliver() runs on delivery workers (publik_sink.c).
 * This file owns nothing those threads write.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "publik_int.h"
#include "httputil.h"

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK
#define OFF(f) offsetof(relais_publik_config, f)

static const relais_option publik_options[] = {
    { .name = "url", .type = RELAIS_OPT_URL, .offset = OFF(url), .modes = SRC | SNK,
      .desc = "w.c.s. site root, e.g. https://demarches.example.org (sink: required; source: for polling)" },
    { .name = "orig", .type = RELAIS_OPT_STR, .offset = OFF(orig), .modes = SRC | SNK,
      .desc = "identifier of the w.c.s. API access Relais signs its calls with (orig=)" },
    { .name = "key", .type = RELAIS_OPT_SECRET, .offset = OFF(key), .modes = SRC | SNK,
      .desc = "the key of that API access (HMAC secret of the signed URLs)" },
    { .name = "formdefs", .type = RELAIS_OPT_STRLIST, .required = 1, .offset = OFF(formdefs),
      .modes = SRC | SNK,
      .desc = "form type slugs: polled and accepted by the source; the sink submits new forms to the first" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s", .offset = OFF(timeout), .modes = SRC | SNK,
      .desc = "longest call to w.c.s. (then RETRY, or the poll is tried again)" },
    RELAIS_HTTP_TLS_OPTIONS(relais_publik_config, SRC | SNK),
    { .name = "poll_interval", .type = RELAIS_OPT_DURATION, .def = "60s", .offset = OFF(poll_interval),
      .modes = SRC, .desc = "how often each form type's list is read for changes since the checkpoint; 0: no polling" },
    { .name = "listen", .type = RELAIS_OPT_STR, .offset = OFF(listen), .modes = SRC,
      .desc = "address:port of the webhook w.c.s. calls on each status change; absent: no webhook" },
    { .name = "port_file", .type = RELAIS_OPT_STR, .offset = OFF(port_file), .modes = SRC,
      .desc = "file where the webhook's bound port is written after start (useful with port 0)" },
    { .name = "path", .type = RELAIS_OPT_STR, .def = "/publik/webhook", .offset = OFF(path), .modes = SRC,
      .desc = "URL path of the webhook (POST, the form export as body)" },
    { .name = "webhook_orig", .type = RELAIS_OPT_STR, .offset = OFF(webhook_orig), .modes = SRC,
      .desc = "orig= that w.c.s.'s webservice call puts in the webhook URL" },
    { .name = "webhook_key", .type = RELAIS_OPT_SECRET, .offset = OFF(webhook_key), .modes = SRC,
      .desc = "request signature key of that webservice call; webhook calls must be signed with it" },
    { .name = "self_user", .type = RELAIS_OPT_STR, .offset = OFF(self_user), .modes = SRC,
      .desc = "author (evolution who) of the changes Relais writes, not submitted again (default: orig)" },
    { .name = "max_body", .type = RELAIS_OPT_SIZE, .def = "16MB", .offset = OFF(max_body), .modes = SRC,
      .desc = "largest webhook body (form exports carry file contents)" },
    { .name = "hook", .type = RELAIS_OPT_STR, .def = "relais-update", .offset = OFF(hook), .modes = SNK,
      .desc = "global-action hook fired with {status, message, event_id} for updated and closed requests" },
    { .name = NULL }
};

int relais_publik_ctx_port(const void *ctx)
{
    const relais_publik_ctx *c = ctx;
    if (!c || !c->source) return -1;
    return relais_publik_source_port(c->source);
}

static int publik_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const relais_publik_config *cfg = config;
    if (!relais_instance_mapped(inst)) {
        snprintf(errstr, errlen, "publik: the instance needs a mapping (mapping: "
                 "connectors/publik/mappings/request.yaml or your own): it translates forms and requests");
        return -1;
    }
    for (char **f = cfg->formdefs; f && *f; f++) {
        if (relais_publik_slug_ok(*f) != 0) {
            snprintf(errstr, errlen, "publik: formdefs: '%.100s' is not a form type slug ([a-z0-9_-], 1 to %d)",
                     *f, RELAIS_PUBLIK_MAX_SLUG);
            return -1;
        }
    }
    if (!cfg->formdefs || !cfg->formdefs[0]) {
        snprintf(errstr, errlen, "publik: formdefs: give at least one form type slug");
        return -1;
    }
    relais_publik_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    c->mode = relais_instance_mode(inst);
    if (c->mode == RELAIS_MODE_SOURCE) {
        c->source = relais_publik_source_new(inst, cfg, errstr, errlen);
        if (!c->source) {
            free(c);
            return -1;
        }
    } else if (c->mode == RELAIS_MODE_SINK) {
        c->sink = relais_publik_sink_new(inst, cfg, errstr, errlen);
        if (!c->sink) {
            free(c);
            return -1;
        }
    } else {
        snprintf(errstr, errlen, "publik: mode must be source or sink");
        free(c);
        return -1;
    }
    *ctxp = c;
    return 0;
}

static int publik_start(void *ctx, char *errstr, size_t errlen)
{
    relais_publik_ctx *c = ctx;
    return c->source ? relais_publik_source_start(c->source, errstr, errlen) : 0;
}

static int publik_receive(void *ctx)
{
    relais_publik_ctx *c = ctx;
    return c->source ? relais_publik_source_poll(c->source, 0) : 0;
}

static relais_verdict publik_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                     relais_answer *ans)
{
    relais_publik_ctx *c = ctx;
    if (!c->sink) {
        ans->status = 0;
        snprintf(ans->detail, sizeof ans->detail, "publik: instance is not a sink");
        ans->local_id[0] = '\0';
        return RELAIS_DELIVER_REJECT;
    }
    return relais_publik_sink_deliver(c->sink, ev, local_id, ans);
}

static void publik_stop(void *ctx)
{
    relais_publik_ctx *c = ctx;
    if (c && c->source) relais_publik_source_stop(c->source);
}

static void publik_destroy(void *ctx)
{
    relais_publik_ctx *c = ctx;
    if (!c) return;
    relais_publik_source_destroy(c->source);
    relais_publik_sink_destroy(c->sink);
    free(c);
}

const relais_connector relais_connector_publik = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name        = "publik",
    .description = "Publik w.c.s. (GRC): forms polled and pushed by signed webhook; answers through form hooks",
    .modes       = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options     = publik_options,
    .config_size = sizeof(relais_publik_config),
    .init        = publik_init,
    .start       = publik_start,
    .receive     = publik_receive,
    .deliver     = publik_deliver,
    .stop        = publik_stop,
    .destroy     = publik_destroy,
};
