/*
 * fuzz_open311_answer.c - libFuzzer target over the open311 client's
 * parsers of a GeoReport v2 server's answers (connectors/open311/
 * open311_render.c): POST answers, request lists, token answers and error
 * bodies, read through hub/safeparse.c; a parsed list is rendered back as
 * the server's JSON and XML answers.
 *
 * Input: an answer body. Seeds: tests/fuzz/corpus/open311_answer/ (the
 * spec's examples, valid and invalid).
 * Build with -DRELAIS_FUZZ=ON (clang); see tests/fuzz/CMakeLists.txt.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "open311_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    char id[128], tok[128], err[512], desc[512];
    if (o311_parse_post_answer(body, size, id, sizeof id, tok, sizeof tok, err, sizeof err) == 0)
        check(id[0] || tok[0]);
    else
        check(err[0] != '\0');
    o311_parse_errors(body, size, desc, sizeof desc);
    json_t *list = o311_parse_requests(body, size, err, sizeof err);
    if (list) {
        check(json_is_array(list));
        size_t i;
        json_t *it;
        json_t *views = json_array();
        json_array_foreach(list, i, it) {
            check(json_is_object(it));
            json_t *sid = json_object_get(it, "service_request_id");
            check(!json_is_integer(sid));
            json_array_append_new(views, o311_public_request(it));
        }
        size_t len;
        char *x = o311_render(views, O311_XML, "service_requests", &len);
        char *j = o311_render(views, O311_JSON, "service_requests", &len);
        check(x != NULL && j != NULL);
        free(x);
        free(j);
        json_decref(views);
        json_decref(list);
    }
    return 0;
}
