/*
 * hub.h - the running hub: wires config, journal, bus, router, delivery,
 * sources and the admin HTTP server. Used by `relais run` and, as a
 * library, by the runtime tests.
 */
#ifndef RELAIS_HUB_H
#define RELAIS_HUB_H
#include "config.h"
#include "bus.h"
#include "journal.h"
#include "metrics.h"

typedef struct relais_hub relais_hub;

/* cfg is borrowed and must outlive the hub. Opens the journal (migrations),
 * the bus (embedded broker when configured), builds the router and every
 * connector instance (init). Nothing runs yet. NULL with errstr on error. */
relais_hub *relais_hub_new(relais_config *cfg, char *errstr, size_t errlen);
/* Start threads, connectors, admin HTTP; re-publish events journaled but
 * never routed. Writes <state_dir>/bootstrap.txt and admin.txt. */
int  relais_hub_start(relais_hub *h, char *errstr, size_t errlen);
/* Block in the main loop (pull sources) until relais_hub_request_stop(). */
int  relais_hub_run(relais_hub *h);
/* Async-signal-safe. */
void relais_hub_request_stop(relais_hub *h);
/* Load every instance's mapping file again (a fixed code table) and switch
 * all of them at once: the next record mapped and the next delivery
 * rendered use the new version, without a restart. All or nothing: when one
 * file has errors nothing changes and errstr lists them (FILE:LINE: ...).
 * The admin tokens file (hub.admin_tokens, when the admin API uses one) is
 * read again in the same all-or-nothing step, so that a token removed from
 * it is refused from then on (revocation without a restart).
 * Returns the number of mappings reloaded, or -1. Thread-safe (the admin
 * HTTP thread and the main loop's SIGHUP both call it); the mappings
 * replaced are kept until relais_hub_destroy (a worker may still use one). */
int  relais_hub_reload_mappings(relais_hub *h, char *errstr, size_t errlen);
/* Ask the main loop to reload (async-signal-safe: for SIGHUP). */
void relais_hub_request_reload(relais_hub *h);
/* Graceful stop: sources first, then routing, then deliveries in flight
 * (bounded wait), then the bus (offsets committed) and the journal. */
void relais_hub_stop(relais_hub *h);
void relais_hub_destroy(relais_hub *h);   /* stops when still running; NULL-safe */

relais_bus     *relais_hub_bus(relais_hub *h);
const struct relais_config *relais_hub_config(const relais_hub *h);
relais_journal *relais_hub_journal(relais_hub *h);
relais_metrics *relais_hub_metrics(relais_hub *h);
int             relais_hub_accepting(relais_hub *h);
/* 0 when ev's data holds to the canonical schema of its type (or the type
 * is a private one that the configuration accepts unvalidated); -1 with the
 * JSON paths of the first faults in errstr. */
int             relais_hub_check_schema(const relais_hub *h, const relais_event *ev,
                                        char *errstr, size_t errlen);
/* The admin HTTP base URL ("http://127.0.0.1:PORT"), or NULL when off. */
const char     *relais_hub_admin_url(relais_hub *h);
/* A connector instance by name (tests, the admin API), or NULL. */
relais_instance *relais_hub_instance(relais_hub *h, const char *name);
/* An operator pauses (pause 1) or resumes (0) the instance `name`, for this
 * process only (docs/RELIABILITY.md "Pausing a connector"). A sink gets no
 * new delivery attempt: its queued and future deliveries are held, pending
 * and leased to this hub, each with a step "paused"; a resume hands them
 * back to the journal, due at once, each with a step "resumed". A source
 * is told it is not accepting (relais_accepting()). `who` ("<token name>
 * (<role>)") is journaled first, synchronously, as a step "paused" or
 * "resumed" without event, destination `name`. 0 done, 1 it already was in
 * that state (nothing journaled), -1 with errstr (unknown name, journal
 * unavailable: nothing changed). Thread-safe. */
int relais_hub_pause(relais_hub *h, const char *name, int pause, const char *who, char *errstr, size_t errlen);
/* Every instance: [{"name","type","mode":"source"|"sink","paused",
 * "paused_by" (when paused); sinks also "circuit":"closed"|"open"|"half-open",
 * "queued", "held"}], in configuration order; NULL out of memory. Thread-safe. */
json_t *relais_hub_connectors(relais_hub *h);

/* Admin HTTP server (admin_http.c). */
typedef struct relais_admin relais_admin;
relais_admin *relais_admin_start(relais_hub *h, const char *listen, char *errstr, size_t errlen);
unsigned short relais_admin_port(const relais_admin *a);
void relais_admin_stop(relais_admin *a);
/* The admin tokens (hub.admin_tokens) in use can be replaced while the
 * server runs (relais_hub_reload_mappings does it): set_tokens takes fresh
 * (owned from then on) and returns its count; calls already authenticated
 * keep their caller's name. The API uses tokens exactly when the config's
 * hub.admin_tokens is set (it refuses to start when they cannot be read),
 * which a reload does not change. Thread-safe. */
struct relais_tokens;
size_t relais_admin_set_tokens(relais_admin *a, struct relais_tokens *fresh);
size_t relais_admin_tokens_count(relais_admin *a);
#endif
