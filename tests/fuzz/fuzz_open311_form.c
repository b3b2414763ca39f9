/*
 * fuzz_open311_form.c - libFuzzer target over what the open311 connector's
 * server parses from a GeoReport v2 POST and query string
 * (connectors/open311/open311_form.c, open311_render.c): form fields ->
 * vendor record (o311_form_add), the normalised hash and the ids derived
 * from it, the spec's checks against a service catalogue, W3C datetimes,
 * comma lists, the client's form encoding and the JSON/XML answers of the
 * public view. libmicrohttpd decodes the real body (its post processor);
 * here the body is cut at '&' and '=' and decoded with MHD_http_unescape,
 * '+' as a space, the way it does.
 *
 * Input: an application/x-www-form-urlencoded body. Seeds:
 * tests/fuzz/corpus/open311_form/.
 * Build with -DRELAIS_FUZZ=ON (clang); see tests/fuzz/CMakeLists.txt.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <microhttpd.h>
#include "open311_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static const char CATALOG[] =
    "tables:\n"
    "  services: {values: {VOI-03: Nids de poule, PRO-02: Propreté, \"001\": Cans}}\n"
    "  service_attributes: {values: {VOI-03/DANGER: q, VOI-03/P: p, PRO-02/N: n, VOI-03/D: d}}\n"
    "  attribute_datatypes: {values: {VOI-03/DANGER: singlevaluelist, VOI-03/P: number, PRO-02/N: multivaluelist,"
    " VOI-03/D: datetime}}\n"
    "  attribute_required: {values: {VOI-03/DANGER: \"true\"}}\n"
    "  attribute_values: {values: {VOI-03/DANGER/oui: Oui, PRO-02/N/a: A, PRO-02/N/b: B}}\n";

static o311_catalog *catalog(void)
{
    static o311_catalog cat;
    static int loaded;
    if (!loaded) {
        char err[256];
        check(o311_catalog_load_buffer("fuzz.yaml", CATALOG, sizeof CATALOG - 1, &cat, err, sizeof err) == 0);
        loaded = 1;
    }
    return &cat;
}

/* one decoded piece: '+' -> ' ', then %XX by libmicrohttpd */
static char *decode(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) s[i] = p[i] == '+' ? ' ' : (char)p[i];
    s[n] = '\0';
    MHD_http_unescape(s);
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    json_t *rec = json_object();
    char err[256];
    size_t start = 0;
    int nfields = 0;
    while (start <= size && nfields < 400) {
        size_t end = start;
        while (end < size && data[end] != '&') end++;
        size_t eq = start;
        while (eq < end && data[eq] != '=') eq++;
        char *k = decode(data + start, eq - start);
        char *v = eq < end ? decode(data + eq + 1, end - eq - 1) : NULL;
        if (k && *k) {
            const char *val = v ? v : "";
            size_t vlen = strlen(val);
            if (o311_form_add(rec, k, val, vlen, err, sizeof err) != 0) check(err[0] != '\0');
            int64_t t;
            if (o311_parse_datetime(val, &t) == 0 && t > 86400 && t < INT64_C(253370764800)) {   /* 1970-01-02 .. 9998 */
                char buf[40];
                o311_format_datetime((time_t)t, buf, sizeof buf);
                int64_t t2;
                check(o311_parse_datetime(buf, &t2) == 0 && t2 == t);
            }
            json_decref(o311_split_csv(val, 1000));
        }
        free(k);
        free(v);
        nfields++;
        start = end + 1;
    }
    char h1[65], h2[65], id[O311_ID_LEN + 1], tok[O311_TOKEN_LEN + 1], id2[O311_ID_LEN + 1];
    check(o311_record_hash(rec, h1) == 0);
    json_object_set_new(rec, "requested_datetime", json_string("2026-11-25T10:00:00+01:00"));
    check(o311_record_hash(rec, h2) == 0 && strcmp(h1, h2) == 0);
    o311_id_from_hash(h1, id);
    o311_token_from_hash(h1, tok);
    check(strlen(id) == O311_ID_LEN && o311_id_from_token(tok, id2) == 0 && strcmp(id, id2) == 0);
    if (o311_request_check(catalog(), rec, err, sizeof err) != 0) check(err[0] != '\0');
    char *form = o311_form_encode(rec, "k", "j");
    free(form);
    json_t *pub = o311_public_request(rec);
    size_t len;
    char *x = o311_render(pub, O311_XML, "service_requests", &len);
    char *j = o311_render(pub, O311_JSON, "service_requests", &len);
    free(x);
    free(j);
    json_decref(pub);
    json_decref(rec);
    return 0;
}
