/*
 * test_open311_form.c - the pure parts of the open311 connector:
 *   - POST fields -> vendor record (attributes, lists, trimming, refusals);
 *   - the normalised hash (field order, api_key, added fields) and the ids
 *     and tokens derived from it;
 *   - the spec's checks of a POST against a catalogue;
 *   - W3C datetimes, comma lists, the client's form encoding;
 *   - the service catalogue from a mapping's tables (the shipped
 *     server.yaml, and each refusal with its FILE:LINE);
 *   - JSON and XML rendering, the public view of a stored request;
 *   - the client's parsers on the spec's examples, and the refusal of the
 *     published invalid JSON (numbers with leading zeros);
 *   - the hub's JSON Schema validator takes the GeoReport draft-04 style
 *     schemas and does bite: the spec's own examples that disagree with
 *     them are found invalid, as the fixtures' README says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include "testsupport.h"
#include "jsonschema.h"
#include "../../connectors/open311/open311_int.h"

static const char *fixture(const char *rel)
{
    static char buf[4][1024];
    static int slot;
    char *out = buf[slot++ % 4];
    struct stat st;
    snprintf(out, 1024, "%s%s", ts_source_path("tests/data/fixtures/open311/"), rel);
    if (stat(out, &st) == 0) return out;
    fail_msg("fixture tests/data/fixtures/open311/%s is missing", rel);
    return out;
}

static int add(json_t *rec, const char *k, const char *v, char *err)
{
    return o311_form_add(rec, k, v, strlen(v), err, 256);
}

static void test_form_add(void **st)
{
    char err[256];
    json_t *rec = json_object();
    assert_int_equal(add(rec, "service_code", " VOI-03 ", err), 0);
    assert_int_equal(add(rec, "api_key", "secret", err), 0);
    assert_int_equal(add(rec, "description", "   ", err), 0);               /* empty after trim: dropped */
    assert_int_equal(add(rec, "attribute[DANGER]", "oui", err), 0);
    assert_int_equal(add(rec, "attribute[NATURE][]", "tags", err), 0);
    assert_int_equal(add(rec, "attribute[NATURE][]", "dechets", err), 0);
    char *s = json_dumps(rec, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(s, "{\"attribute\":{\"DANGER\":\"oui\",\"NATURE\":[\"dechets\",\"tags\"]},\"service_code\":\"VOI-03\"}");
    free(s);
    assert_int_equal(add(rec, "attribute[a b]", "1", err), -1);
    assert_non_null(strstr(err, "attribute[CODE]"));
    assert_int_equal(add(rec, "attribute[X", "1", err), -1);
    assert_int_equal(add(rec, "attribute[X]junk", "1", err), -1);
    assert_int_equal(add(rec, "attribute", "1", err), -1);
    assert_int_equal(add(rec, "bad key", "1", err), -1);
    assert_non_null(strstr(err, "not valid"));
    assert_int_equal(o311_form_add(rec, "description", "a\0b", 3, err, sizeof err), -1);
    assert_non_null(strstr(err, "NUL"));
    assert_int_equal(add(rec, "description", "\xff\xfe", err), -1);
    assert_non_null(strstr(err, "UTF-8"));
    char *big = malloc(O311_MAX_VALUE + 2);
    memset(big, 'a', O311_MAX_VALUE + 1);
    big[O311_MAX_VALUE + 1] = '\0';
    assert_int_equal(add(rec, "description", big, err), -1);
    free(big);
    json_decref(rec);
    rec = json_object();
    char key[64];
    int refused = 0;
    for (int i = 0; i < O311_MAX_FIELDS + 5 && !refused; i++) {
        snprintf(key, sizeof key, "attribute[A%d]", i);
        refused = add(rec, key, "v", err) != 0;
    }
    assert_true(refused);
    assert_non_null(strstr(err, "more than"));
    json_decref(rec);
}

static json_t *form(const char *const *kv)
{
    char err[256];
    json_t *rec = json_object();
    for (size_t i = 0; kv[i]; i += 2) assert_int_equal(add(rec, kv[i], kv[i + 1], err), 0);
    return rec;
}

static void test_hash_and_ids(void **st)
{
    static const char *const a[] = { "api_key", "k1", "service_code", "VOI-03", "lat", "48.73", "long", "2.27",
                                     "attribute[NATURE][]", "x", "attribute[NATURE][]", "y", NULL };
    static const char *const b[] = { "attribute[NATURE][]", "y", "long", "2.27 ", "service_code", "VOI-03",
                                     "attribute[NATURE][]", "x", "lat", "48.73", "api_key", "k2", NULL };
    static const char *const c[] = { "service_code", "VOI-03", "lat", "48.73", "long", "2.28", NULL };
    json_t *ra = form(a), *rb = form(b), *rc = form(c);
    char ha[65], hb[65], hc[65];
    assert_int_equal(o311_record_hash(ra, ha), 0);
    assert_int_equal(o311_record_hash(rb, hb), 0);
    assert_int_equal(o311_record_hash(rc, hc), 0);
    assert_string_equal(ha, hb);                          /* order, api_key, white space: the same request */
    assert_string_not_equal(ha, hc);
    json_object_set_new(ra, "requested_datetime", json_string("2026-11-25T10:00:00+01:00"));
    json_object_set_new(ra, "service_request_id", json_string("1"));
    assert_int_equal(o311_record_hash(ra, hb), 0);
    assert_string_equal(ha, hb);                          /* the server's own fields are not hashed */
    char id[O311_ID_LEN + 1], tok[O311_TOKEN_LEN + 1], id2[O311_ID_LEN + 1];
    o311_id_from_hash(ha, id);
    o311_token_from_hash(ha, tok);
    assert_int_equal(strlen(id), 15);
    for (const char *p = id; *p; p++) assert_true(*p >= '0' && *p <= '9');
    assert_int_equal(strncmp(tok, ha, 32), 0);
    assert_int_equal(o311_id_from_token(tok, id2), 0);
    assert_string_equal(id, id2);
    assert_int_equal(o311_id_from_token("XYZ", id2), -1);
    assert_int_equal(o311_id_from_token("0123456789ABCDEF0123456789abcdef", id2), -1);
    o311_id_from_hash("ffffffffffffffff000000000000000000000000000000000000000000000000", id);
    assert_string_equal(id, "744073709551615");       /* 18446744073709551615 mod 10^15 */
    o311_id_from_hash("0000000000000001000000000000000000000000000000000000000000000000", id);
    assert_string_equal(id, "000000000000001");
    json_decref(ra);
    json_decref(rb);
    json_decref(rc);
}

static o311_catalog CAT;

static void load_shipped(void)
{
    char err[512];
    if (CAT.services) return;
    if (o311_catalog_load(ts_source_path("connectors/open311/mappings/server.yaml"), &CAT, err, sizeof err) != 0)
        fail_msg("%s", err);
}

static void check_refused(const char *const *kv, const char *needle)
{
    char err[256];
    json_t *rec = form(kv);
    assert_int_equal(o311_request_check(&CAT, rec, err, sizeof err), -1);
    if (!strstr(err, needle)) fail_msg("'%s' not in '%s'", needle, err);
    json_decref(rec);
}

static void test_request_check(void **st)
{
    load_shipped();
    char err[256];
    static const char *const ok1[] = { "service_code", "VOI-03", "lat", "48.7", "long", "2.2", "attribute[DANGER]", "non",
                                       "attribute[PROFONDEUR]", "12.5", NULL };
    static const char *const ok2[] = { "service_code", "PRO-02", "address_id", "x", "attribute[NATURE][]", "tags",
                                       "attribute[NATURE][]", "dechets", NULL };
    static const char *const ok3[] = { "service_code", "ECL-01", "address_string", "3 place de la Gare", NULL };
    const char *const *oks[] = { ok1, ok2, ok3, NULL };
    for (size_t i = 0; oks[i]; i++) {
        json_t *rec = form(oks[i]);
        if (o311_request_check(&CAT, rec, err, sizeof err) != 0) fail_msg("ok%zu refused: %s", i + 1, err);
        json_decref(rec);
    }
    static const char *const k1[] = { "lat", "1", "long", "2", NULL };
    static const char *const k2[] = { "service_code", "001", "lat", "1", "long", "2", NULL };
    static const char *const k3[] = { "service_code", "ECL-01", NULL };
    static const char *const k4[] = { "service_code", "ECL-01", "long", "2", NULL };
    static const char *const k5[] = { "service_code", "ECL-01", "lat", "91", "long", "2", NULL };
    static const char *const k6[] = { "service_code", "ECL-01", "lat", "1x", "long", "2", NULL };
    static const char *const k7[] = { "service_code", "VOI-03", "lat", "1", "long", "2", NULL };
    static const char *const k8[] = { "service_code", "VOI-03", "lat", "1", "long", "2", "attribute[DANGER]", "bof", NULL };
    static const char *const k9[] = { "service_code", "VOI-03", "lat", "1", "long", "2", "attribute[DANGER][]", "oui", NULL };
    static const char *const k10[] = { "service_code", "PRO-02", "lat", "1", "long", "2", "attribute[NATURE][]", "tags",
                                       "attribute[NATURE][]", "autre", NULL };
    check_refused(k1, "service_code was not provided");
    check_refused(k2, "service_code '001' was not found");
    check_refused(k3, "a location is required");
    check_refused(k4, "together");
    check_refused(k5, "WGS-84");
    check_refused(k6, "WGS-84");
    check_refused(k7, "attribute DANGER is required");
    check_refused(k8, "'bof'");
    check_refused(k9, "takes one value");
    check_refused(k10, "'autre'");
    /* description: 4000 characters allowed, counted as characters not bytes */
    json_t *rec = form(ok3);
    char *d = malloc(4001 * 2 + 1);
    for (int i = 0; i < 4000; i++) memcpy(d + 2 * i, "\xc3\xa9", 2);     /* é */
    d[8000] = '\0';
    json_object_set_new(rec, "description", json_string(d));
    assert_int_equal(o311_request_check(&CAT, rec, err, sizeof err), 0);
    memcpy(d + 8000, "x", 2);
    json_object_set_new(rec, "description", json_string(d));
    assert_int_equal(o311_request_check(&CAT, rec, err, sizeof err), -1);
    assert_non_null(strstr(err, "4000"));
    free(d);
    json_decref(rec);
}

static void test_datetimes(void **st)
{
    int64_t t;
    assert_int_equal(o311_parse_datetime("2010-04-14T06:37:38-08:00", &t), 0);
    assert_int_equal(t, 1271255858);
    assert_int_equal(o311_parse_datetime("2010-04-14T14:37:38Z", &t), 0);
    assert_int_equal(t, 1271255858);
    assert_int_equal(o311_parse_datetime("2010-04-14T14:37:38.123456Z", &t), 0);
    assert_int_equal(t, 1271255858);
    assert_int_equal(o311_parse_datetime("2010-04-14T16:37:38+0200", &t), 0);
    assert_int_equal(t, 1271255858);
    assert_int_equal(o311_parse_datetime("2010-04-14 14:37", &t), 0);
    assert_int_equal(t, 1271255820);
    assert_int_equal(o311_parse_datetime("2024-02-29", &t), 0);
    static const char *const bad[] = { "", "2010-04-14T", "2010-13-01", "2023-02-29", "2010-04-31", "2010-04-14T25:00",
                                       "2010-04-14T10:00+24:00", "2010-04-14T10:00:00Zjunk", "14/04/2010", "2010-4-14",
                                       "2010-04-14T10:00:00.Z", NULL };
    for (size_t i = 0; bad[i]; i++)
        if (o311_parse_datetime(bad[i], &t) == 0) fail_msg("'%s' accepted", bad[i]);
    assert_int_equal(o311_parse_datetime(NULL, &t), -1);
    char buf[40];
    o311_format_datetime((time_t)1271255858, buf, sizeof buf);
    assert_int_equal(strlen(buf), 25);
    assert_int_equal(buf[22], ':');
    assert_int_equal(o311_parse_datetime(buf, &t), 0);
    assert_int_equal(t, 1271255858);
}

static void test_csv_and_encode(void **st)
{
    json_t *l = o311_split_csv(" a, b ,,c ", 10);
    char *s = json_dumps(l, JSON_COMPACT);
    assert_string_equal(s, "[\"a\",\"b\",\"c\"]");
    free(s);
    json_decref(l);
    assert_null(o311_split_csv("a,b,c", 2));
    char big[300];
    memset(big, 'x', 250);
    big[250] = '\0';
    assert_null(o311_split_csv(big, 10));
    l = o311_split_csv("", 10);
    assert_int_equal(json_array_size(l), 0);
    json_decref(l);

    json_t *f = json_loads("{\"service_code\":\"VOI-03\",\"lat\":48.7309,\"long\":2.2713,\"n\":3,\"b\":true,"
                           "\"description\":\"Trou & bosse = 2\",\"skip\":null,"
                           "\"attribute\":{\"DANGER\":\"oui\",\"NATURE\":[\"a b\",\"c\"]}}", 0, NULL);
    char *body = o311_form_encode(f, "k&1", "ville.example");
    assert_string_equal(body, "api_key=k%261&jurisdiction_id=ville.example&service_code=VOI-03&lat=48.7309&long=2.2713"
                              "&n=3&b=true&description=Trou%20%26%20bosse%20%3D%202&attribute[DANGER]=oui"
                              "&attribute[NATURE][]=a%20b&attribute[NATURE][]=c");
    free(body);
    json_decref(f);
    f = json_loads("{\"x\":{\"y\":{\"z\":1}}}", 0, NULL);
    assert_null(o311_form_encode(f, NULL, NULL));
    json_decref(f);
    char key[300];
    assert_int_equal(o311_state_key(key, sizeof key, "request/", "1"), 0);
    assert_string_equal(key, "request/1");
    memset(big, 'x', 199);
    big[199] = '\0';
    assert_int_equal(o311_state_key(key, sizeof key, "request/", big), -1);
    assert_int_equal(o311_state_key(key, sizeof key, "request/", ""), -1);
}

static void test_catalog(void **st)
{
    load_shipped();
    assert_int_equal(json_array_size(CAT.services), 5);
    json_t *svc = json_array_get(CAT.services, 1);
    const char *const keys[] = { "service_code", "service_name", "description", "metadata", "type", "keywords", "group" };
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach(svc, k, v) assert_string_equal(k, keys[i++]);      /* the spec's order */
    assert_string_equal(json_string_value(json_object_get(svc, "service_name")), "Éclairage public");
    json_t *def = json_object_get(CAT.definitions, "PRO-02");
    json_t *nature = json_array_get(json_object_get(def, "attributes"), 0);
    assert_string_equal(json_string_value(json_object_get(nature, "datatype")), "multivaluelist");
    assert_int_equal(json_array_size(json_object_get(nature, "values")), 3);
    assert_true(json_is_false(json_object_get(nature, "required")));
    assert_int_equal(json_array_size(json_object_get(json_object_get(CAT.definitions, "AUTRE"), "attributes")), 0);
    assert_non_null(json_object_get(CAT.notices, "VOI-03"));
    assert_int_equal(strlen(CAT.changeset), 16);

    static const struct { const char *yaml; const char *needle; } bad[] = {
        { "format: json\n", "t.yaml:1: a GeoReport server needs" },
        { "tables:\n  other: {values: {a: b}}\n", "t.yaml:2: tables: a table 'services'" },
        { "tables:\n  services: {values: {A: a}}\n  service_groups:\n    values: {B: x}\n", "t.yaml:4: table 'service_groups': 'B'" },
        { "tables:\n  services: {values: {A: a}}\n  service_attributes:\n    values:\n      B/X: q\n", "t.yaml:5: table 'service_attributes'" },
        { "tables:\n  services: {values: {A: a}}\n  service_attributes: {values: {A/X: q}}\n"
          "  attribute_datatypes: {values: {A/X: color}}\n", "t.yaml:4: table 'attribute_datatypes': 'color'" },
        { "tables:\n  services: {values: {A: a}}\n  service_attributes: {values: {A/X: q}}\n"
          "  attribute_datatypes: {values: {A/X: singlevaluelist}}\n", "give its values" },
        { "tables:\n  services: {values: {A: a}}\n  service_attributes: {values: {A/X: q}}\n"
          "  attribute_values: {values: {A/X/k: v}}\n", "not a list" },
        { "tables:\n  services: {values: {A: a}}\n  service_attributes: {values: {A/X: q}}\n"
          "  attribute_required: {values: {A/X: maybe}}\n", "true or false" },
        { "tables:\n  services: {values: {A: a}}\n  service_types: {values: {A: daily}}\n", "'daily'" },
        { "tables:\n  services: {values: {\"A/B\": a}}\n", "without '/'" },
        { "tables:\n  services: {values: {A: [a]}}\n", "must be a text" },
        { "tables:\n  services: {default: x}\n", "'values'" },
        { NULL, NULL }
    };
    for (i = 0; bad[i].yaml; i++) {
        o311_catalog c;
        char err[512] = "";
        assert_int_equal(o311_catalog_load_buffer("t.yaml", bad[i].yaml, strlen(bad[i].yaml), &c, err, sizeof err), -1);
        if (!strstr(err, bad[i].needle)) fail_msg("case %zu: '%s' not in '%s'", i, bad[i].needle, err);
        assert_null(c.services);
    }
    char err[256];
    o311_catalog c;
    assert_int_equal(o311_catalog_load("/nonexistent/x.yaml", &c, err, sizeof err), -1);
    o311_catalog_clear(NULL);
}

static xmlDocPtr parse_xml(const char *s, size_t len)
{
    xmlDocPtr d = xmlReadMemory(s, (int)len, "x.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR);
    if (!d) fail_msg("not XML: %s", s);
    return d;
}

static void test_render(void **st)
{
    load_shipped();
    size_t len;
    char *x = o311_render(CAT.services, O311_XML, "services", &len);
    assert_int_equal(strncmp(x, "<?xml version=\"1.0\" encoding=\"", 30), 0);
    xmlDocPtr d = parse_xml(x, len);
    xmlNodePtr root = xmlDocGetRootElement(d);
    assert_string_equal((const char *)root->name, "services");
    int n = 0;
    for (xmlNodePtr c = root->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) { assert_string_equal((const char *)c->name, "service"); n++; }
    assert_int_equal(n, 5);
    xmlFreeDoc(d);
    free(x);
    /* nulls, booleans, numbers, control characters, names that cannot be elements */
    json_t *v = json_pack("{s:n,s:b,s:f,s:s,s:s}", "a", "b", 1, "c", 2.5, "d", "x\001y<&>", "not valid", "left out");
    x = o311_render(v, O311_XML, "r", &len);
    assert_non_null(strstr(x, "<a></a>") ? strstr(x, "<a></a>") : strstr(x, "<a/>"));
    assert_non_null(strstr(x, "<b>true</b>"));
    assert_non_null(strstr(x, "<c>2.5</c>"));
    assert_non_null(strstr(x, "<d>x y&lt;&amp;&gt;</d>"));
    assert_null(strstr(x, "left out"));
    d = parse_xml(x, len);
    xmlFreeDoc(d);
    free(x);
    x = o311_render(v, O311_JSON, "r", &len);
    assert_string_equal(x, "{\"a\":null,\"b\":true,\"c\":2.5,\"d\":\"x\\u0001y<&>\",\"not valid\":\"left out\"}");
    free(x);
    json_decref(v);
    v = json_pack("[f]", 48.7309);
    x = o311_render(v, O311_JSON, "r", &len);
    assert_string_equal(x, "[48.7309]");
    free(x);
    json_decref(v);
    /* the errors body: the same as the spec's example */
    v = o311_errors(403, "Invalid api_key received -- can't proceed with create_request.");
    json_t *ex = json_load_file(fixture("examples/error_403.json"), 0, NULL);
    assert_true(json_equal(v, ex));
    x = o311_render(v, O311_XML, "errors", &len);
    d = parse_xml(x, len);
    char *ours = (char *)xmlNodeGetContent(xmlDocGetRootElement(d));
    size_t exlen;
    char *exs = ts_read_file(fixture("examples/error_403.xml"), &exlen);
    xmlDocPtr exd = parse_xml(exs, exlen);
    char *theirs = (char *)xmlNodeGetContent(xmlDocGetRootElement(exd));
    /* same text content once white space between elements is ignored */
    char a[512] = "", b[512] = "";
    for (size_t i = 0, j = 0; ours[i] && j < sizeof a - 1; i++) if (ours[i] != ' ' && ours[i] != '\n') a[j++] = ours[i];
    for (size_t i = 0, j = 0; theirs[i] && j < sizeof b - 1; i++) if (theirs[i] != ' ' && theirs[i] != '\n') b[j++] = theirs[i];
    assert_string_equal(a, b);
    xmlFree(ours);
    xmlFree(theirs);
    xmlFreeDoc(d);
    xmlFreeDoc(exd);
    free(exs);
    free(x);
    json_decref(ex);
    json_decref(v);
    assert_string_equal(o311_content_type(O311_XML), "text/xml; charset=utf-8");
    assert_string_equal(o311_content_type(O311_JSON), "application/json; charset=utf-8");
}

static void test_public_request(void **st)
{
    json_t *stored = json_loads("{\"service_request_id\":\"42\",\"status\":\"in_progress\",\"service_code\":\"VOI-03\","
                                "\"requested_datetime\":\"2026-11-25T10:00:00+01:00\",\"lat\":\"48.5\",\"long\":2,"
                                "\"address_id\":123,\"token\":\"t\",\"record_id\":\"h\",\"attributes\":{\"A\":\"1\"}}", 0, NULL);
    json_t *v = o311_public_request(stored);
    json_t *ex = json_load_file(fixture("examples/request.json"), 0, NULL);
    json_t *e0 = json_array_get(ex, 0);
    assert_int_equal(json_object_size(v), json_object_size(e0));
    const char *k;
    json_t *x;
    json_object_foreach(e0, k, x) assert_non_null(json_object_get(v, k));    /* the spec's fields */
    assert_string_equal(json_string_value(json_object_get(v, "status")), "open");
    assert_true(json_number_value(json_object_get(v, "lat")) == 48.5);
    assert_true(json_number_value(json_object_get(v, "long")) == 2.0);
    assert_string_equal(json_string_value(json_object_get(v, "address_id")), "123");
    assert_true(json_is_null(json_object_get(v, "status_notes")));
    assert_null(json_object_get(v, "token"));
    json_decref(ex);
    json_decref(v);
    json_decref(stored);
}

static void test_client_parsers(void **st)
{
    char id[64], tok[64], err[256];
    size_t len;
    char *s = ts_read_file(fixture("examples/post_request_response.json"), &len);
    assert_int_equal(o311_parse_post_answer(s, len, id, sizeof id, tok, sizeof tok, err, sizeof err), 0);
    assert_string_equal(id, "293944");                  /* a number in the spec's example */
    assert_string_equal(tok, "");
    free(s);
    s = ts_read_file(fixture("examples/request_id_from_token.json"), &len);
    json_t *a = o311_parse_requests(s, len, err, sizeof err);
    assert_non_null(a);
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "token")), "12345");
    assert_string_equal(json_string_value(json_object_get(json_array_get(a, 0), "service_request_id")), "638344");
    json_decref(a);
    free(s);
    s = ts_read_file(fixture("examples/requests.json"), &len);
    a = o311_parse_requests(s, len, err, sizeof err);
    assert_int_equal(json_array_size(a), 2);
    json_t *r1 = json_array_get(a, 1);
    assert_string_equal(json_string_value(json_object_get(r1, "service_request_id")), "638349");
    assert_string_equal(json_string_value(json_object_get(r1, "zipcode")), "94122");
    assert_string_equal(json_string_value(json_object_get(r1, "status")), "open");
    json_decref(a);
    free(s);
    /* the published JSON with numbers written 001: refused */
    static const char *const invalid[] = { "invalid/request.json", "invalid/requests.json", "invalid/services.json", NULL };
    for (size_t i = 0; invalid[i]; i++) {
        s = ts_read_file(fixture(invalid[i]), &len);
        err[0] = '\0';
        assert_null(o311_parse_requests(s, len, err, sizeof err));
        if (!strstr(err, "answer:")) fail_msg("%s: %s", invalid[i], err);
        assert_int_equal(o311_parse_post_answer(s, len, id, sizeof id, tok, sizeof tok, err, sizeof err), -1);
        free(s);
    }
    s = ts_read_file(fixture("examples/error_403.json"), &len);
    char d[256];
    assert_int_equal(o311_parse_errors(s, len, d, sizeof d), 0);
    assert_string_equal(d, "403 Invalid api_key received -- can't proceed with create_request.");
    free(s);
    static const char *const not_answers[] = { "{}", "[]", "[1]", "[{\"service_notice\":\"x\"}]", "{\"a\":1,\"a\":2}",
                                               "[{\"service_request_id\":1.5}]", NULL };
    for (size_t i = 0; not_answers[i]; i++)
        assert_int_equal(o311_parse_post_answer(not_answers[i], strlen(not_answers[i]), id, sizeof id, tok, sizeof tok,
                                                err, sizeof err), -1);
    assert_int_equal(o311_parse_post_answer("{\"token\":\"abc\"}", 15, id, sizeof id, tok, sizeof tok, err, sizeof err), 0);
    assert_string_equal(tok, "abc");
    assert_null(o311_parse_requests("{}", 2, err, sizeof err));
    assert_null(o311_parse_requests("[1]", 3, err, sizeof err));
    assert_int_equal(o311_parse_errors("[]", 2, d, sizeof d), -1);
    assert_int_equal(o311_parse_errors("<html>", 6, d, sizeof d), -1);
}

static void test_urls(void **st)
{
    char path[64];
    o311_format f;
    assert_int_equal(o311_split_url("/v2/services/VOI-03.xml", "/v2", path, sizeof path, &f), 0);
    assert_string_equal(path, "/services/VOI-03");
    assert_int_equal(f, O311_XML);
    assert_int_equal(o311_split_url("/requests.json", "", path, sizeof path, &f), 0);
    assert_string_equal(path, "/requests");
    assert_int_equal(f, O311_JSON);
    assert_int_equal(o311_split_url("/v3/requests.json", "/v2/", path, sizeof path, &f), 1);
    assert_int_equal(o311_split_url("/v2x/requests.json", "/v2", path, sizeof path, &f), 1);
    assert_int_equal(o311_split_url("/requests", "", path, sizeof path, &f), 2);
    assert_int_equal(o311_split_url("/a.b/requests", "", path, sizeof path, &f), 2);
    assert_int_equal(o311_split_url("/requests.html", "", path, sizeof path, &f), 2);
    assert_string_equal(o311_path_arg("/services/VOI-03", "/services"), "VOI-03");
    assert_null(o311_path_arg("/services", "/services"));
    assert_null(o311_path_arg("/services/", "/services"));
    assert_null(o311_path_arg("/services/a/b", "/services"));
    assert_null(o311_path_arg("/servicesX/a", "/services"));
}

/* The hub's validator loads the GeoReport schemas (draft-04 style, relative
 * $ref) and finds what the fixtures' README says about the spec's examples. */
static void test_schemas_bite(void **st)
{
    static const char *const files[] = { "service.json", "services.json", "service-definition.json", "request.json",
                                         "requests.json", NULL };
    relais_schema_set *set = relais_schema_set_new();
    char err[512], uri[1200], abs[1024];
    for (size_t i = 0; files[i]; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "schema/%s", files[i]);
        assert_non_null(realpath(fixture(rel), abs));
        json_t *doc = json_load_file(abs, 0, NULL);
        snprintf(uri, sizeof uri, "file://%s", abs);
        assert_int_equal(relais_schema_set_add(set, doc, uri, files[i], err, sizeof err), 0);
        json_decref(doc);
    }
    if (relais_schema_set_compile(set, err, sizeof err) != 0) fail_msg("%s", err);
    static const struct { const char *example, *schema; int valid; } cases[] = {
        { "examples/services.json", "schema/services.json", 1 },
        { "examples/service_definition.json", "schema/service-definition.json", 0 },   /* values[].key numbers */
        { "examples/requests.json", "schema/requests.json", 0 },                       /* ids numbers */
        { "examples/request.json", "schema/requests.json", 0 },
        { NULL, NULL, 0 }
    };
    for (size_t i = 0; cases[i].example; i++) {
        json_t *inst = json_load_file(fixture(cases[i].example), 0, NULL);
        assert_non_null(inst);
        assert_non_null(realpath(fixture(cases[i].schema), abs));
        snprintf(uri, sizeof uri, "file://%s", abs);
        const relais_schema *sc = relais_schema_set_get(set, uri);
        assert_non_null(sc);
        relais_schema_fault f[2];
        size_t nf;
        if (relais_schema_validate(sc, inst, "$", f, 2, &nf) != cases[i].valid)
            fail_msg("%s against %s: expected %s", cases[i].example, cases[i].schema, cases[i].valid ? "valid" : "invalid");
        json_decref(inst);
    }
    relais_schema_set_destroy(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_form_add),
        cmocka_unit_test(test_hash_and_ids),
        cmocka_unit_test(test_request_check),
        cmocka_unit_test(test_datetimes),
        cmocka_unit_test(test_csv_and_encode),
        cmocka_unit_test(test_catalog),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_public_request),
        cmocka_unit_test(test_client_parsers),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_schemas_bite),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    o311_catalog_clear(&CAT);
    return rc;
}
