/*
 * router.h - routes declared in config: event type patterns, tenant, simple
 * field filters, destinations. Pure code; compiled once at start.
 *
 * Patterns are dot-separated segments: a segment is matched with fnmatch()
 * ("request", "req*", "*" = exactly one segment) and "**" matches any tail,
 * including nothing ("fr.relais.**"). A destination sink only receives events
 * of its own tenant: one tenant's records never reach another's packages.
 */
#ifndef RELAIS_ROUTER_H
#define RELAIS_ROUTER_H
#include <stddef.h>
#include "config.h"
#include "relais/event.h"

typedef struct relais_router relais_router;

relais_router *relais_router_new(const relais_config *cfg, char *errstr, size_t errlen);
void           relais_router_destroy(relais_router *r);

/* Destinations for ev, each once (the first matching route names it), in
 * route order. Fills dests[i] / routes[i] (borrowed from the router) up to
 * max; returns the number found. */
size_t relais_router_match(const relais_router *r, const relais_event *ev,
                           const char **dests, const char **routes, size_t max);

/* Exposed for tests. */
int relais_pattern_match(const char *pattern, const char *type);
/* The value at a dotted path of the event ("type", "subject", "data.a.b") as
 * text (strings as is, numbers and booleans in JSON form); NULL when absent
 * or not a scalar. Writes into buf. */
const char *relais_event_field(const relais_event *ev, const char *path, char *buf, size_t len);
#endif
