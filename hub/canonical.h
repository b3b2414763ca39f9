/*
 * canonical.h - the canonical model's rule for one event: its data must
 * hold to the JSON Schema of its type (schemas/, docs/SCHEMAS.md).
 *
 * Types in the canonical namespace "fr.relais." must have a schema; a type
 * outside it (a town's private integration) is accepted unvalidated unless
 * the configuration says schemas.private_types: reject. Pure function over a
 * compiled, read-only schema set: thread-safe.
 */
#ifndef RELAIS_CANONICAL_H
#define RELAIS_CANONICAL_H
#include <stddef.h>
#include "relais/event.h"
#include "jsonschema.h"

#define RELAIS_CANONICAL_PREFIX "fr.relais."

/* 0: acceptable. -1: refused, errstr like
 *   "event type fr.relais.grc.request.created.v1: $.data.location.address.postcode:
 *    does not match pattern '^[0-9]{5}$'; $.data.channel: ..."
 * (at most 3 faults are listed). set NULL: every event is acceptable. */
int relais_schema_check_event(const relais_schema_set *set, int reject_private,
                              const relais_event *ev, char *errstr, size_t errlen);
#endif
