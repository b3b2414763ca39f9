/*
 * event.h - the canonical envelope: a CloudEvents 1.0 event in JSON.
 *
 * Attributes: specversion "1.0", id (UUIDv7 made by the hub), source
 * ("/relais/<tenant>/<connector instance>"), type, subject, time (RFC 3339 UTC),
 * datacontenttype "application/json", data (a JSON object).
 * Extensions (CloudEvents extension attribute names are lower-case alphanumerics):
 *   correlationid  follows one citizen case across packages
 *   tenant         the town, CCAS or urban community that owns the event
 *   traceparent    W3C Trace Context (CloudEvents distributed tracing extension)
 *   recordid       the id the source package gave the record (inbox dedupe key)
 *
 * A relais_event is immutable once built; it is reference counted so that the
 * bus, the router and several deliveries can share one.
 */
#ifndef RELAIS_EVENT_H
#define RELAIS_EVENT_H

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relais_event relais_event;

const char *relais_event_id(const relais_event *ev);
const char *relais_event_source(const relais_event *ev);
const char *relais_event_type(const relais_event *ev);
const char *relais_event_subject(const relais_event *ev);     /* may be NULL */
const char *relais_event_time(const relais_event *ev);
const char *relais_event_correlation(const relais_event *ev);
const char *relais_event_tenant(const relais_event *ev);
const char *relais_event_traceparent(const relais_event *ev);
const char *relais_event_record_id(const relais_event *ev);
/* Borrowed reference to the data object; do not modify. */
json_t     *relais_event_data(const relais_event *ev);
/* The whole event serialised as compact JSON (cached; valid while ev lives). */
const char *relais_event_json(const relais_event *ev, size_t *len);
/* Borrowed reference to the whole event as a JSON object; do not modify. */
json_t     *relais_event_object(const relais_event *ev);

relais_event *relais_event_ref(relais_event *ev);
void          relais_event_unref(relais_event *ev);   /* NULL is a no-op */

#ifdef __cplusplus
}
#endif
#endif
