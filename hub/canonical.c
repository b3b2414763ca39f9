/*
 * canonical.c - check an event against the canonical schema of its type
 * (see canonical.h).
 */
#include <stdio.h>
#include <string.h>
#include "canonical.h"

int relais_schema_check_event(const relais_schema_set *set, int reject_private,
                              const relais_event *ev, char *errstr, size_t errlen)
{
    if (!set) return 0;
    const char *type = relais_event_type(ev);
    const relais_schema *sc = relais_schema_set_for_type(set, type);
    if (!sc) {
        if (strncmp(type, RELAIS_CANONICAL_PREFIX, strlen(RELAIS_CANONICAL_PREFIX)) == 0) {
            snprintf(errstr, errlen, "event type %s: no canonical schema has this type "
                     "(a typo, or a version that does not exist?)", type);
            return -1;
        }
        if (reject_private) {
            snprintf(errstr, errlen, "event type %s: no schema, and schemas.private_types is reject", type);
            return -1;
        }
        return 0;
    }
    relais_schema_fault faults[3];
    size_t nf = 0;
    json_t *data = relais_event_data(ev);
    json_t *empty = NULL;
    if (!data) data = empty = json_object();
    int ok = relais_schema_validate(sc, data, "$.data", faults, 3, &nf);
    json_decref(empty);
    if (ok) return 0;
    size_t off = (size_t)snprintf(errstr, errlen, "event type %s:", type);
    for (size_t i = 0; i < nf && off < errlen; i++)
        off += (size_t)snprintf(errstr + off, errlen - off, "%s %s: %s", i ? ";" : "",
                                faults[i].path, faults[i].message);
    if (nf == 0 && off < errlen) snprintf(errstr + off, errlen - off, " invalid data");
    return -1;
}
