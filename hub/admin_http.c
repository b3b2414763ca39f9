/*
 * admin_http.c - the admin HTTP server (libmicrohttpd, its own internal
 * polling thread): GET /healthz and GET /metrics, and (tests only, off by
 * default) POST /fault/bus.
 *   /healthz  200 {"status":"ok","bus":true,"journal":true} when the bus and
 *             the journal are reachable, else 503 with the same body shape.
 *   /metrics  Prometheus text exposition format 0.0.4.
 *   POST /reload  load the mapping files again (relais_hub_reload_mappings):
 *             200 {"reloaded":N}, or 422 {"error":"FILE:LINE: ..."} and
 *             nothing changed.
 * Handlers only read atomics and call thread-safe health checks.
 */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include "hub.h"
#include "bus.h"
#include "config.h"
#include "sla.h"
#include "event_int.h"
#include <jansson.h>

struct relais_admin {
    struct MHD_Daemon *d;
    relais_hub        *hub;
    unsigned short     port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) { free(body); return MHD_NO; }
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* POST /fault/bus?action=down|up|errors|leader[&count=N] - fault injection
 * into the embedded broker, for the reliability tests (docs/RELIABILITY.md).
 * Only with hub.fault_injection: true and bus.brokers: embedded; 404 else.
 *   down     every broker of the mock cluster stops answering
 *   up       they answer again
 *   errors   the next `count` (default 10) Produce requests fail with a
 *            retriable error (NOT_LEADER_FOR_PARTITION)
 *   leader   the leader of every partition moves to the next broker */
static enum MHD_Result fault(relais_admin *a, struct MHD_Connection *c, const char *url)
{
    const relais_config *cfg = relais_hub_config(a->hub);
    rd_kafka_mock_cluster_t *mc = relais_bus_mock_cluster(relais_hub_bus(a->hub));
    if (!cfg->hub.fault_injection || !mc || strcmp(url, "/fault/bus") != 0)
        return reply(c, MHD_HTTP_NOT_FOUND, "application/json", strdup("{\"error\":\"not found\"}"));
    const char *action = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "action");
    const char *cnt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "count");
    long count = cnt ? strtol(cnt, NULL, 10) : 10;
    int nbrokers = (int)cfg->bus.embedded_brokers;
    if (!action) action = "";
    if (!strcmp(action, "down") || !strcmp(action, "up")) {
        for (int id = 1; id <= nbrokers; id++) {
            if (action[0] == 'd') rd_kafka_mock_broker_set_down(mc, id);
            else rd_kafka_mock_broker_set_up(mc, id);
        }
    } else if (!strcmp(action, "errors")) {
        if (count < 1 || count > 100000) count = 10;
        rd_kafka_resp_err_t *errs = calloc((size_t)count, sizeof *errs);
        if (!errs) return MHD_NO;
        for (long i = 0; i < count; i++) errs[i] = RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION;
        rd_kafka_mock_push_request_errors_array(mc, 0 /* ApiKey Produce */, (size_t)count, errs);
        free(errs);
    } else if (!strcmp(action, "leader")) {
        static _Atomic int next = 1;
        int to = (int)(atomic_fetch_add(&next, 1) % nbrokers) + 1;
        for (int p = 0; p < (int)cfg->bus.partitions; p++)
            rd_kafka_mock_partition_set_leader(mc, cfg->bus.topic, p, to);
    } else {
        return reply(c, MHD_HTTP_BAD_REQUEST, "application/json",
                     strdup("{\"error\":\"action must be down, up, errors or leader\"}"));
    }
    relais_logf(RELAIS_LOG_WARN, "admin", "fault injected into the embedded broker: %s", action);
    char body[96];
    snprintf(body, sizeof body, "{\"fault\":\"%.20s\"}\n", action);
    return reply(c, MHD_HTTP_OK, "application/json", strdup(body));
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_size,
                               void **con_cls)
{
    relais_admin *a = cls;
    (void)version; (void)upload_data; (void)con_cls;
    if (*upload_size) { *upload_size = 0; return MHD_YES; }
    if (strcmp(method, "POST") == 0 && strncmp(url, "/fault/", 7) == 0)
        return fault(a, c, url);
    if (strcmp(method, "POST") == 0 && strcmp(url, "/reload") == 0) {
        char err[4096];
        int n = relais_hub_reload_mappings(a->hub, err, sizeof err);
        json_t *o = n >= 0 ? json_pack("{s:i}", "reloaded", n) : json_pack("{s:s}", "error", err);
        char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (!body) return MHD_NO;
        return reply(c, n >= 0 ? MHD_HTTP_OK : 422, "application/json", body);
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "application/json", strdup("{\"error\":\"method not allowed\"}"));
    relais_bus *bus = relais_hub_bus(a->hub);
    relais_journal *j = relais_hub_journal(a->hub);
    int bus_up = bus && relais_bus_healthy(bus);
    int j_up = j && relais_journal_healthy(j);
    if (strcmp(url, "/healthz") == 0) {
        char body[128];
        snprintf(body, sizeof body, "{\"status\":\"%s\",\"bus\":%s,\"journal\":%s}\n",
                 bus_up && j_up ? "ok" : "unavailable", bus_up ? "true" : "false", j_up ? "true" : "false");
        return reply(c, bus_up && j_up ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE, "application/json", strdup(body));
    }
    if (strcmp(url, "/metrics") == 0) {
        char *text = relais_metrics_render(relais_hub_metrics(a->hub), bus_up, j_up);
        if (!text) return MHD_NO;
        /* service levels of citizens' requests, when a lifecycle instance follows them */
        const relais_config *cfg = relais_hub_config(a->hub);
        int follows = 0;
        for (size_t i = 0; i < cfg->n_connectors; i++)
            if (cfg->connectors[i].type && !strcmp(cfg->connectors[i].type, "lifecycle")) follows = 1;
        if (follows && j_up) {
            char *sla = relais_sla_metrics(j, relais_paris_date(relais_now_us() / 1000000));
            size_t a1 = strlen(text), a2 = sla ? strlen(sla) : 0;
            char *both = sla ? realloc(text, a1 + a2 + 1) : NULL;
            if (both) {
                memcpy(both + a1, sla, a2 + 1);
                text = both;
            }
            free(sla);
        }
        return reply(c, MHD_HTTP_OK, "text/plain; version=0.0.4", text);
    }
    return reply(c, MHD_HTTP_NOT_FOUND, "application/json", strdup("{\"error\":\"not found\"}"));
}

relais_admin *relais_admin_start(relais_hub *h, const char *listen, char *errstr, size_t errlen)
{
    char host[64] = "127.0.0.1";
    long port = 0;
    const char *colon = strrchr(listen, ':');
    if (!colon || colon - listen >= (long)sizeof host) {
        snprintf(errstr, errlen, "admin_listen '%s': expected HOST:PORT", listen);
        return NULL;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
    char *end;
    port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535) {
        snprintf(errstr, errlen, "admin_listen '%s': bad port", listen);
        return NULL;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((unsigned short)port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        snprintf(errstr, errlen, "admin_listen '%s': host must be an IPv4 address", listen);
        return NULL;
    }
    relais_admin *a = calloc(1, sizeof *a);
    if (!a) { snprintf(errstr, errlen, "out of memory"); return NULL; }
    a->hub = h;
    a->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handler, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
    if (!a->d) {
        snprintf(errstr, errlen, "cannot listen on %s", listen);
        free(a);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
    a->port = info ? info->port : (unsigned short)port;
    return a;
}

unsigned short relais_admin_port(const relais_admin *a) { return a ? a->port : 0; }

void relais_admin_stop(relais_admin *a)
{
    if (!a) return;
    MHD_stop_daemon(a->d);
    free(a);
}
