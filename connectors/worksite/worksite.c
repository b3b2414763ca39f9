/*
 * worksite.c - the `worksite` connector: a technical services' work-order
 * tool ("gestion des interventions", GMAO) speaking the REST interface of
 * api/worksite-openapi.yaml. Descriptor, option table and lifecycle.
 *
 *   sink    canonical requests (grc.request.created) -> intervention requests,
 *           body made by the instance's outbound mapping (worksite_sink.c)
 *   source  polls the interventions' status changes -> workorder events,
 *           made by the instance's inbound mapping (worksite_source.c)
 *
 * Documentation: connectors/worksite/README.md.
 *
 * Threads: init/start/stop/destroy run on the hub's main thread; deliver()
 * on the hub's delivery workers (worksite_sink.c); the source's poller runs
 * on its own thread (worksite_source.c). This file owns no data those threads
 * write.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include "worksite_int.h"
#include "httputil.h"

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK
#define OFF(f) offsetof(relais_worksite_config, f)

static const relais_option worksite_options[] = {
    { .name = "url", .type = RELAIS_OPT_URL, .required = 1, .offset = OFF(url), .modes = SRC | SNK,
      .desc = "base URL of the work-order tool, e.g. https://gmao.ville.example (the API is under /api/v1)" },
    { .name = "token", .type = RELAIS_OPT_SECRET, .required = 1, .offset = OFF(token), .modes = SRC | SNK,
      .desc = "API token, sent as Authorization: Bearer (env:NAME or file:PATH)" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s", .offset = OFF(timeout),
      .modes = SRC | SNK, .desc = "whole request timeout (a sink then retries, a poll stops and keeps its checkpoint)" },
    { .name = "connect_timeout", .type = RELAIS_OPT_DURATION, .def = "3s", .offset = OFF(connect_timeout),
      .modes = SRC | SNK, .desc = "TCP/TLS connect timeout" },
    RELAIS_HTTP_TLS_OPTIONS(relais_worksite_config, SRC | SNK),
    { .name = "self_account", .type = RELAIS_OPT_STR, .required = 1, .offset = OFF(self_account),
      .modes = SRC, .desc = "the tool's account of Relais's token: changes it authored are Relais's own and are not events (no echo)" },
    { .name = "poll_interval", .type = RELAIS_OPT_DURATION, .def = "30s", .offset = OFF(poll_interval),
      .modes = SRC, .desc = "time between two polls of the changes" },
    { .name = "page_size", .type = RELAIS_OPT_INT, .def = "100", .offset = OFF(page_size), .modes = SRC,
      .desc = "interventions per page when polling (1..500)" },
    { .name = NULL }
};

static int worksite_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const relais_worksite_config *cfg = config;
    relais_worksite_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    unsigned mode = relais_instance_mode(inst);
    if (mode == RELAIS_MODE_SOURCE)
        c->source = ws_source_new(inst, cfg, errstr, errlen);
    else if (mode == RELAIS_MODE_SINK)
        c->sink = ws_sink_new(inst, cfg, errstr, errlen);
    else
        snprintf(errstr, errlen, "worksite: mode must be source or sink");
    if (!c->source && !c->sink) {
        free(c);
        return -1;
    }
    *ctxp = c;
    return 0;
}

static int worksite_start(void *ctx, char *errstr, size_t errlen)
{
    relais_worksite_ctx *c = ctx;
    return c->source ? ws_source_start(c->source, errstr, errlen) : 0;
}

static relais_verdict worksite_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                       relais_answer *ans)
{
    relais_worksite_ctx *c = ctx;
    if (!c->sink) {
        ans->status = 0;
        ans->local_id[0] = '\0';
        snprintf(ans->detail, sizeof ans->detail, "worksite: instance is not a sink");
        return RELAIS_DELIVER_REJECT;
    }
    return ws_sink_deliver(c->sink, ev, local_id, ans);
}

static void worksite_stop(void *ctx)
{
    relais_worksite_ctx *c = ctx;
    if (c) ws_source_stop(c->source);
}

static void worksite_destroy(void *ctx)
{
    relais_worksite_ctx *c = ctx;
    if (!c) return;
    ws_source_destroy(c->source);
    ws_sink_destroy(c->sink);
    free(c);
}

const relais_connector relais_connector_worksite = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name        = "worksite",
    .description = "technical services' work-order tool (interventions): requests in as intervention requests, status changes out as work-order events",
    .modes       = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options     = worksite_options,
    .config_size = sizeof(relais_worksite_config),
    .init        = worksite_init,
    .start       = worksite_start,
    .receive     = NULL,
    .deliver     = worksite_deliver,
    .stop        = worksite_stop,
    .destroy     = worksite_destroy,
};
