/*
 * fuzz_event.c - libFuzzer target over the canonical envelope parser
 * (hub/event.c: relais_event_parse), which reads every message the hub
 * consumes from the bus: any Kafka client can write to the topic, so this is
 * outside input.
 *
 * Properties checked: a parse either fails with a message or yields an event
 * whose required attributes are present, whose serialisation parses again to
 * the same id, type and source, and whose entity and source instance are
 * computable.
 * Seeds: tests/fuzz/corpus/event/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "event_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256] = "";
    relais_event *ev = relais_event_parse((const char *)data, size, err, sizeof err);
    if (!ev) {
        check(err[0] != '\0');
        return 0;
    }
    check(relais_event_id(ev) && relais_event_type(ev) && relais_event_source(ev));
    check(relais_event_type_valid(relais_event_type(ev)));
    check(relais_event_tenant(ev) && relais_event_correlation(ev) && relais_event_record_id(ev));
    check(relais_event_data(ev) != NULL);
    char entity[128];
    relais_event_entity(ev, entity, sizeof entity);
    check(entity[0] != '\0');
    check(relais_event_source_instance(ev) != NULL);
    size_t len;
    const char *js = relais_event_json(ev, &len);
    relais_event *again = relais_event_parse(js, len, err, sizeof err);
    check(again != NULL);
    check(strcmp(relais_event_id(again), relais_event_id(ev)) == 0);
    check(strcmp(relais_event_type(again), relais_event_type(ev)) == 0);
    check(strcmp(relais_event_source(again), relais_event_source(ev)) == 0);
    relais_event_unref(again);
    relais_event_unref(ev);
    return 0;
}
