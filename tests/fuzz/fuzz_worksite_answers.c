/*
 * fuzz_worksite_answers.c - libFuzzer target over the worksite connector's
 * parsers of the work-order tool's answers (connectors/worksite/worksite_api.c):
 * error bodies (ws_error_text), an intervention's id, a page of the list, a
 * history, RFC 3339 times and intervention ids.
 *
 * Input: the first byte selects the parser; the rest is the answer body.
 * Checks beyond "no crash": whatever a parser accepts holds what its
 * contract promises (texts terminated and short, ids valid, changes sorted
 * by (at, id), every change's fields present).
 * Seeds: tests/fuzz/corpus/worksite_answers/.
 *
 * Build with -DRELAIS_FUZZ=ON (clang), see tests/fuzz/CMakeLists.txt:
 *   cmake --build build-fuzz --target fuzz_worksite_answers
 *   build-fuzz/tests/fuzz/fuzz_worksite_answers -max_total_time=60 tests/fuzz/corpus/worksite_answers
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "worksite_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    char err[256], out[300];

    switch (sel % 5) {
    case 0: {
        size_t cap = 1 + sel / 5 % sizeof out;   /* small buffers too */
        memset(out, 'x', sizeof out);
        ws_error_text(body, len, out, cap);
        check(strlen(out) < cap);
        json_t *s = json_string(out);   /* valid UTF-8 */
        check(s != NULL);
        json_decref(s);
        break;
    }
    case 1: {
        char id[80];
        if (ws_parse_intervention_id(body, len, id, sizeof id, err, sizeof err) == 0) check(ws_id_valid(id));
        else check(id[0] == '\0' && err[0] != '\0');
        break;
    }
    case 2: {
        ws_page p;
        if (ws_parse_page(body, len, &p, err, sizeof err) == 0) {
            size_t i;
            json_t *it;
            json_array_foreach(p.items, i, it) {
                int64_t us;
                check(ws_id_valid(json_string_value(json_object_get(it, "id"))));
                check(ws_time_parse(json_string_value(json_object_get(it, "updated_at")), &us) == 0);
            }
            check(!p.next_cursor || (*p.next_cursor && strlen(p.next_cursor) <= 200));
        } else {
            check(p.root == NULL);
        }
        ws_page_clear(&p);
        break;
    }
    case 3: {
        ws_history h;
        if (ws_parse_history(body, len, sel & 0x80 ? "INT-2026-000001" : NULL, &h, err, sizeof err) == 0) {
            for (size_t i = 0; i < h.n; i++) {
                const ws_change *c = &h.changes[i];
                check(c->id >= 1 && c->author && *c->author && c->at && ws_status_name(c->status));
                if (i > 0) {
                    const ws_change *p = &h.changes[i - 1];
                    check(p->at_us < c->at_us || (p->at_us == c->at_us && p->id <= c->id));
                }
            }
            check(h.nbad == 0 || h.bad_reason[0]);
        }
        ws_history_clear(&h);
        break;
    }
    default: {
        char *s = malloc(len + 1);
        if (!s) return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        int64_t us;
        if (ws_time_parse(s, &us) == 0) check(strlen(s) >= 20);
        if (ws_id_valid(s)) check(strlen(s) <= 64 && !strchr(s, '/'));
        ws_status st;
        if (ws_status_parse(s, &st) == 0) check(strcmp(ws_status_name(st), s) == 0);
        free(s);
        break;
    }
    }
    return 0;
}
