/*
 * instance.h - the hub side of a connector instance (relais_instance), and
 * the operations behind the source API of include/relais/connector.h.
 *
 * The hub (hub.c) fills `ops` with its real submit/reject/accepting; tests of
 * a single connector can build an instance with their own ops
 * (relais_instance_new) and see exactly what the connector submits.
 */
#ifndef RELAIS_INSTANCE_H
#define RELAIS_INSTANCE_H
#include "relais/connector.h"

typedef struct relais_instance_ops {
    int (*submit)(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                  relais_submit_result *results);
    int (*reject)(void *hub, relais_instance *inst, const char *record_id, const char *where,
                  const char *reason, const char *raw, size_t rawlen);
    int (*accepting)(void *hub, const relais_instance *inst);
    /* packages (connector.h); NULL in a test's ops: the calls return -1 */
    int (*xref_local)(void *hub, const relais_instance *inst, const char *package,
                      const char *canonical_id, char *out, size_t outlen);
    int (*xref_canonical)(void *hub, const relais_instance *inst, const char *package,
                          const char *entity, const char *local_id, char *out, size_t outlen);
    int (*xref_put)(void *hub, const relais_instance *inst, const char *canonical_id, const char *local_id);
    int (*state_put)(void *hub, const relais_instance *inst, const char *key, json_t *value);
    json_t *(*state_get)(void *hub, const relais_instance *inst, const char *key, int *err);
    json_t *(*state_list)(void *hub, const relais_instance *inst, const char *prefix,
                          const char *after, size_t limit);
    void (*echo)(void *hub, relais_instance *inst, const char *record_id);
} relais_instance_ops;

struct relais_instance {
    char                      *name;
    char                      *tenant;
    char                      *package;    /* `package:` key; NULL: the name */
    unsigned                   mode;
    const relais_connector    *desc;
    void                      *config;     /* option struct (owned by the config) */
    void                      *ctx;        /* the connector's context from init() */
    const relais_instance_ops *ops;
    void                      *hub;        /* opaque for ops */
    char                      *bootstrap;  /* bus bootstrap servers */
    long                       max_in_flight;
    const struct relais_mapping *mapping;  /* borrowed from the config; NULL: none */
    const struct relais_http_allow *outgoing_allow; /* hub's outgoing.allow, borrowed from the
                                                       config; NULL: none (httputil.h) */
};

/* A stand-alone instance (tests, tools). Strings are copied. */
relais_instance *relais_instance_new(const char *name, const char *tenant, unsigned mode,
                                     const relais_connector *desc, void *config,
                                     const relais_instance_ops *ops, void *hub,
                                     const char *bootstrap);
void relais_instance_destroy(relais_instance *inst);   /* does not call desc->destroy */
#endif
