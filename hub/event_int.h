/*
 * event_int.h - building and parsing canonical events inside the hub
 * (the public accessors are in include/relais/event.h).
 */
#ifndef RELAIS_EVENT_INT_H
#define RELAIS_EVENT_INT_H
#include <stdint.h>
#include "relais/connector.h"
#include "relais/event.h"

/* Build a new event from a source record: validates the record (type
 * present and well-formed, data an object), assigns a UUIDv7 id, the time, a
 * correlation id (= the id when none), a traceparent (new trace when none)
 * and, when record_id is NULL, the hex SHA-256 of the canonical data.
 * `source_instance` becomes source "/relais/<tenant>/<instance>" and the
 * event's source key for dedupe. NULL with a message on invalid input. */
relais_event *relais_event_build(const relais_record *rec, const char *source_instance,
                                 const char *default_tenant, char *errstr, size_t errlen);

/* Same, for a caller that owns the data and will not touch it again (the
 * hub's mapped records): the reference to data is taken over (released
 * also on failure) and the data is not copied. */
relais_event *relais_event_build_take(const relais_record *rec, json_t *data, const char *source_instance,
                                      const char *default_tenant, char *errstr, size_t errlen);

/* Parse a whole CloudEvent (JSON text) and check the envelope: specversion
 * "1.0", id, source, type required strings, data an object when present,
 * extension names lower-case alphanumerics. NULL with the JSON path of the
 * first fault in errstr ("$.type: missing"). */
relais_event *relais_event_parse(const char *buf, size_t len, char *errstr, size_t errlen);
/* Same from a JSON object; takes a new reference to obj. */
relais_event *relais_event_from_json(json_t *obj, char *errstr, size_t errlen);

/* The instance name that journaled the event (the dedupe key's first half):
 * the last segment of source "/relais/<tenant>/<instance>". */
const char *relais_event_source_instance(const relais_event *ev);
/* The canonical entity kind the event is about, from its type
 * "fr.relais.<domain>.<entity>.<verb>" -> "<entity>"; otherwise "subject". */
void relais_event_entity(const relais_event *ev, char *buf, size_t len);
/* Validate an event type: dot-separated segments of [a-z0-9_-]+, at least 2. */
int relais_event_type_valid(const char *type);

/* Helpers shared by the hub. */
void    relais_uuid_v7(char out[37]);
int64_t relais_now_us(void);                 /* wall clock, microseconds since epoch */
int64_t relais_mono_us(void);                /* monotonic clock, microseconds */
void    relais_time_rfc3339(int64_t us, char *buf, size_t len);  /* 2026-11-25T19:06:30.123456Z */
void    relais_sha256_hex(const void *buf, size_t len, char out[65]);
void    relais_hex(const unsigned char *in, size_t n, char *out);   /* lowercase; out: 2n+1 bytes */
#endif
