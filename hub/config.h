/*
 * config.h - the hub's configuration: one YAML file.
 *
 *   hub:
 *     name: relais                 # instance name, used as the Kafka client.id prefix
 *     tenant: default              # default tenant of connectors that do not name one
 *     admin_listen: 127.0.0.1:8080 # admin HTTP (/healthz, /metrics); "" or absent: off
 *     admin_tokens: /etc/relais/admin-tokens  # bearer tokens and roles of the admin API
 *     state_dir: .run/relais       # where the hub writes bootstrap.txt, admin.txt
 *     log_level: info              # error|warn|info|debug
 *   bus:
 *     brokers: embedded            # or "host1:9092,host2:9092" (bootstrap.servers)
 *     embedded_brokers: 1          # mock cluster size when embedded
 *     topic: relais.events
 *     partitions: 6
 *     group: relais-hub            # consumer group shared by every `relais run` on this config
 *     rdkafka.<property>: <value>  # passed to librdkafka as is (both producer and consumer)
 *   journal:
 *     conninfo: "host=/tmp/pg dbname=relais"   # or conninfo: env:RELAIS_PG (secret syntax)
 *     batch_max: 1000              # most jobs per group commit
 *     batch_wait: 0ms              # extra wait to fill a batch
 *   delivery:
 *     workers: 8                   # delivery threads
 *     max_attempts: 8              # then dead-letter
 *     backoff_initial: 500ms
 *     backoff_max: 5m
 *     lease: 60s                   # a claimed delivery returns to the pool after this
 *     poll_interval: 200ms         # how often due retries are looked for
 *   outgoing:
 *     allow:                       # host names and address ranges the hub may call (absent: any)
 *       - publik.mairie.example    # a name (the URL's host), "*.mairie.example" for the names below it
 *       - 10.0.0.0/8               # a range the connected address must be in (names alone allow none)
 *   retention:                     # payloads purged by `relais retention run` (docs/CONFIG.md)
 *     payloads: 180d               # default: s, m (minutes), h, d, w or y (365 days); "never"
 *     rules:                       # first match wins; patterns as routes' match
 *       - match: "fr.relais.billing.**"
 *         payloads: 1y
 *   connectors:
 *     - name: desk                 # unique; [a-z0-9_-]+
 *       type: http                 # a registered descriptor
 *       mode: source               # source | sink
 *       tenant: ville              # optional, default hub.tenant
 *       max_in_flight: 4           # sinks: concurrent deliveries to this destination
 *       batch_max: 1               # sinks: events per exchange (connectors with deliver_batch)
 *       order: none                # sinks: "subject" delivers one subject's events in order
 *       package: worksite          # the vendor package (shared by its source and sink instances)
 *       <option>: <value>          # the descriptor's option table
 *   routes:
 *     - name: requests
 *       match: "fr.relais.grc.request.*"   # or a list; '*' matches within one dot segment, '**' any tail
 *       tenant: ville                      # optional: only this tenant's events
 *       where:                             # optional, all must hold
 *         - field: data.category           # dotted path into the event
 *           equals: voirie                 # or: in: [a, b] / exists: true / not_equals: x
 *       to: [worksite, archive]            # sink instance names
 */
#ifndef RELAIS_CONFIG_H
#define RELAIS_CONFIG_H
#include <stddef.h>
#include "relais/connector.h"
#include "errlist.h"
#include "yamltree.h"

typedef struct relais_conn_cfg {
    char                   *name;
    char                   *type;
    unsigned                mode;        /* RELAIS_MODE_SOURCE or RELAIS_MODE_SINK */
    char                   *tenant;
    const relais_connector *desc;        /* the registered descriptor */
    void                   *opts;        /* desc->config_size bytes filled by the option table */
    long                    max_in_flight; /* sinks: per-destination concurrency (key "max_in_flight", default 4) */
    long                    batch_max;   /* sinks: most events per deliver_batch call (key "batch_max", default 1) */
    char                   *mapping_path; /* key "mapping": the file as resolved (relative to the config's folder); NULL: none */
    struct relais_mapping  *mapping;     /* loaded and compiled with the config; NULL: none */
    char                   *package;     /* key "package": the vendor package; NULL: the name */
    int                     order_subject; /* sinks, key "order: subject": deliver in order per subject */
    int                     line;
} relais_conn_cfg;

typedef enum { WHERE_EQUALS = 1, WHERE_NOT_EQUALS, WHERE_IN, WHERE_EXISTS } relais_where_op;

typedef struct relais_where {
    char           *field;      /* dotted path: "data.category", "subject", "type" */
    relais_where_op op;
    char          **values;     /* EQUALS/NOT_EQUALS: 1 value; IN: n values; NULL-terminated */
    int             exists;     /* WHERE_EXISTS: 1 must exist, 0 must not */
} relais_where;

typedef struct relais_route_cfg {
    char          *name;
    char         **match;       /* NULL-terminated type patterns */
    char          *tenant;      /* NULL: any */
    relais_where  *where;
    size_t         n_where;
    char         **to;          /* NULL-terminated sink names */
    int            line;
} relais_route_cfg;

/* A retention rule: events whose type matches keep their payload `secs`
 * seconds (-1: never purged). */
typedef struct relais_retention_rule {
    char **match;               /* NULL-terminated type patterns (router.h) */
    long   secs;
    int    line;
} relais_retention_rule;

typedef struct relais_config {
    char *path;
    struct {
        char *name;
        char *tenant;
        char *admin_listen;
        char *state_dir;
        char *log_level;
        int   fault_injection;       /* 1: POST /fault/bus on the admin server (tests only) */
        char *admin_tokens;          /* the admin API's tokens file (tokens.h); NULL: none (loopback only) */
        struct relais_tokens *tokens; /* loaded from admin_tokens with the config; NULL: none */
    } hub;
    struct {
        char      *brokers;          /* "embedded" or bootstrap list */
        long       embedded_brokers;
        char      *topic;
        long       partitions;
        char      *group;
        relais_kv *rdkafka;          /* "rdkafka." passthrough */
    } bus;
    struct {
        char *conninfo;              /* resolved (may come from env:/file:) */
        long  batch_max;
        long  batch_wait_ms;
    } journal;
    struct {
        long workers;
        long max_attempts;
        long backoff_initial_ms;
        long backoff_max_ms;
        long lease_ms;
        long poll_interval_ms;
        long circuit_failures;       /* consecutive failed attempts that open a destination's circuit; 0: off */
        long circuit_open_ms;        /* how long it stays open before one probe */
        long queue_max;              /* deliveries in memory above which routing pauses */
    } delivery;
    struct {
        char *dir;                   /* canonical schemas; default RELAIS_DEFAULT_SCHEMA_DIR */
        char *private_types;         /* "accept" or "reject": types outside fr.relais. without a schema */
    } schemas;
    struct {
        char *key_file;              /* NULL: <state_dir>/audit.key */
        char *checkpoints;           /* NULL: <state_dir>/audit.checkpoints */
        long  checkpoint_interval_ms;
        long  stream_max;
    } audit;
    struct {
        int                       set;      /* 1: the `outgoing.allow` key is present (even empty) */
        int                       line;     /* its line */
        int                       bad;      /* an entry was refused (already reported) */
        struct relais_http_allow *allow;    /* compiled list (hub/httputil.h); NULL: key absent, any host */
    } outgoing;
    struct {
        long                   secs;        /* default payload retention in seconds; -1: never purged */
        relais_retention_rule *rules;       /* first match wins */
        size_t                 n_rules;
    } retention;
    struct relais_schema_set *schema_set;  /* loaded and compiled with the config */
    relais_conn_cfg  *connectors;
    size_t            n_connectors;
    relais_route_cfg *routes;
    size_t            n_routes;
} relais_config;

/* Load and validate. Returns NULL when any error was found; every error is in
 * errs as "FILE:LINE: message" (unknown keys, wrong types, unknown connector
 * type, route to an unknown or non-sink connector, duplicate names, ...). */
relais_config *relais_config_load(const char *path, relais_errlist *errs);
/* Same, from memory (fuzzing, tests); `name` stands for FILE in messages. */
relais_config *relais_config_load_buffer(const char *name, const char *buf, size_t len,
                                         relais_errlist *errs);
void           relais_config_destroy(relais_config *c);

/* Registry of built-in connector descriptors (hub/registry.c). */
const relais_connector *relais_registry_find(const char *name);
const relais_connector *const *relais_registry_all(size_t *n);
#endif
