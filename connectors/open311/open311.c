/*
 * open311.c - the `open311` connector: Open311 GeoReport v2, both ways.
 * Descriptor, option table and the lifecycle callbacks, dispatching on the
 * option `role` and the instance's mode:
 *
 *   role server, mode source  Relais is a GeoReport v2 endpoint (open311_server.c)
 *   role server, mode sink    keeps that endpoint's requests up to date from
 *                             canonical grc.request.* events (open311_status.c)
 *   role client, mode sink    POSTs requests to a GeoReport v2 endpoint
 *   role client, mode source  polls their status (open311_client.c)
 *
 * Every instance needs a mapping (`mapping:`): the server's service list is
 * in its tables, and the vendor <-> canonical translation in its rules.
 * Documentation: connectors/open311/README.md.
 *
 * Threads: init/start/stop/destroy run on the hub's main thread; the
 * server's connection threads, the client's poller thread and the delivery
 * workers only read the context pointers set here.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "open311_int.h"
#include "httputil.h"

#define SRC RELAIS_MODE_SOURCE
#define SNK RELAIS_MODE_SINK
#define OFF(f) offsetof(o311_config, f)

static const relais_option open311_options[] = {
    { .name = "role", .type = RELAIS_OPT_ENUM, .required = 1, .offset = OFF(role), .enum_values = "server|client",
      .desc = "server: Relais is a GeoReport v2 endpoint (source) and keeps its requests (sink); "
              "client: Relais posts requests to one (sink) and polls their status (source)" },
    /* role server, source */
    { .name = "listen", .type = RELAIS_OPT_STR, .offset = OFF(listen), .modes = SRC,
      .desc = "role server: address:port of the GeoReport v2 endpoint, e.g. 127.0.0.1:8311; port 0 picks one" },
    { .name = "port_file", .type = RELAIS_OPT_STR, .offset = OFF(port_file), .modes = SRC,
      .desc = "role server: file where the bound port is written after start" },
    { .name = "path_prefix", .type = RELAIS_OPT_STR, .offset = OFF(path_prefix), .modes = SRC,
      .desc = "role server: URL path before the GeoReport paths, e.g. /open311/v2" },
    { .name = "base_url", .type = RELAIS_OPT_STR, .offset = OFF(base_url), .modes = SRC,
      .desc = "role server: the endpoint's public URL given by discovery (default http://<listen><path_prefix>)" },
    { .name = "api_keys", .type = RELAIS_OPT_SECRET, .offset = OFF(api_keys), .modes = SRC,
      .desc = "role server: the accepted api_key values, comma-separated (required: POST needs one of them)" },
    { .name = "contact", .type = RELAIS_OPT_STR, .offset = OFF(contact), .modes = SRC,
      .desc = "role server: discovery's contact text" },
    { .name = "key_service", .type = RELAIS_OPT_STR, .offset = OFF(key_service), .modes = SRC,
      .desc = "role server: discovery's key_service text (how to get an api_key)" },
    { .name = "max_body", .type = RELAIS_OPT_SIZE, .def = "64KB", .offset = OFF(max_body), .modes = SRC,
      .desc = "role server: largest POST body (413 above)" },
    { .name = "max_connections", .type = RELAIS_OPT_INT, .def = "64", .offset = OFF(max_connections), .modes = SRC,
      .desc = "role server: most concurrent connections (one thread each)" },
    /* both roles */
    { .name = "jurisdiction_id", .type = RELAIS_OPT_STR, .offset = OFF(jurisdiction_id),
      .desc = "server: the jurisdiction served (others get 404); client: sent with every call" },
    /* role client */
    { .name = "endpoint", .type = RELAIS_OPT_URL, .offset = OFF(endpoint),
      .desc = "role client: base URL of the GeoReport v2 API (http or https), e.g. https://ville.example/open311/v2" },
    { .name = "api_key", .type = RELAIS_OPT_SECRET, .offset = OFF(api_key),
      .desc = "role client: api_key sent with POST requests" },
    { .name = "timeout", .type = RELAIS_OPT_DURATION, .def = "10s", .offset = OFF(timeout),
      .desc = "role client: whole HTTP exchange timeout" },
    { .name = "connect_timeout", .type = RELAIS_OPT_DURATION, .def = "3s", .offset = OFF(connect_timeout),
      .desc = "role client: TCP/TLS connect timeout" },
    { .name = "poll_interval", .type = RELAIS_OPT_DURATION, .def = "60s", .offset = OFF(poll_interval), .modes = SRC,
      .desc = "role client: time between two polls of the requests' status" },
    { .name = "poll_batch", .type = RELAIS_OPT_INT, .def = "50", .offset = OFF(poll_batch), .modes = SRC,
      .desc = "role client: service_request_id values per GET requests call" },
    RELAIS_HTTP_TLS_OPTIONS(o311_config, 0),
    { .name = NULL }
};

int o311_ctx_port(const void *ctx)
{
    const o311_ctx *c = ctx;
    return c && c->server ? o311_server_port(c->server) : -1;
}

static int open311_init(relais_instance *inst, void *config, void **ctxp, char *errstr, size_t errlen)
{
    const o311_config *cfg = config;
    if (!relais_instance_mapped(inst)) {
        snprintf(errstr, errlen, "open311: a mapping is required (mapping: connectors/open311/mappings/%s.yaml "
                 "or the town's copy): %s", cfg->role && !strcmp(cfg->role, "client") ? "client" : "server",
                 cfg->role && !strcmp(cfg->role, "client") ? "it turns canonical requests into GeoReport fields and back"
                                                           : "its tables give the service list");
        return -1;
    }
    o311_ctx *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(errstr, errlen, "out of memory");
        return -1;
    }
    c->inst = inst;
    c->mode = relais_instance_mode(inst);
    c->client = cfg->role && !strcmp(cfg->role, "client");
    int ok;
    if (c->client) {
        c->cl = o311_client_new(inst, cfg, c->mode, errstr, errlen);
        ok = c->cl != NULL;
    } else if (c->mode == RELAIS_MODE_SOURCE) {
        c->server = o311_server_new(inst, cfg, errstr, errlen);
        ok = c->server != NULL;
    } else {
        c->status = o311_status_new(inst, errstr, errlen);
        ok = c->status != NULL;
    }
    if (!ok) {
        free(c);
        return -1;
    }
    *ctxp = c;
    return 0;
}

static int open311_start(void *ctx, char *errstr, size_t errlen)
{
    o311_ctx *c = ctx;
    if (c->server) return o311_server_start(c->server, errstr, errlen);
    if (c->cl) return o311_client_start(c->cl, errstr, errlen);
    return 0;
}

static relais_verdict open311_deliver(void *ctx, const relais_event *ev, const char *local_id,
                                      relais_answer *ans)
{
    o311_ctx *c = ctx;
    if (c->status) return o311_status_deliver(c->status, ev, local_id, ans);
    if (c->cl && c->mode == RELAIS_MODE_SINK) return o311_client_deliver(c->cl, ev, local_id, ans);
    ans->status = 0;
    snprintf(ans->detail, sizeof ans->detail, "open311: instance is not a sink");
    ans->local_id[0] = '\0';
    return RELAIS_DELIVER_REJECT;
}

static void open311_stop(void *ctx)
{
    o311_ctx *c = ctx;
    if (!c) return;
    o311_server_stop(c->server);
    o311_client_stop(c->cl);
}

static void open311_destroy(void *ctx)
{
    o311_ctx *c = ctx;
    if (!c) return;
    o311_server_destroy(c->server);
    o311_status_destroy(c->status);
    o311_client_destroy(c->cl);
    free(c);
}

const relais_connector relais_connector_open311 = {
    .abi_version = RELAIS_CONNECTOR_ABI,
    .name        = "open311",
    .description = "Open311 GeoReport v2: a server (discovery, services, requests, tokens in JSON and XML) "
                   "and a client (post requests, poll their status)",
    .modes       = RELAIS_MODE_SOURCE | RELAIS_MODE_SINK,
    .options     = open311_options,
    .config_size = sizeof(o311_config),
    .init        = open311_init,
    .start       = open311_start,
    .receive     = NULL,
    .deliver     = open311_deliver,
    .stop        = open311_stop,
    .destroy     = open311_destroy,
};
