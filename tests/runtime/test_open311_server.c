/*
 * test_open311_server.c - the open311 connector, role server, with the hub
 * as a library (real PostgreSQL journal and package state, embedded broker,
 * the shipped mapping connectors/open311/mappings/server.yaml):
 *
 *   - every JSON answer (discovery, services, service definition, POST,
 *     GET requests, GET one request, tokens, errors) is checked against the
 *     GeoReport v2 JSON Schemas of the fixtures with the hub's validator
 *     (hub/jsonschema.h), every XML answer is parsed (libxml2) and its
 *     element names checked; error bodies have the shape of the spec's
 *     example (error_403.json / .xml);
 *   - POST -> one event fr.relais.grc.request.created.v1 in the journal,
 *     subject request/o311-<id>; the same form again (another field order,
 *     another api_key) -> the same id and no second event;
 *   - the spec's checks (api_key 403, jurisdiction 404, service_code,
 *     location, required attribute 400, method 405, size 413, content type);
 *   - GET requests filters; tokens;
 *   - the sink (role server) updates the stored request from canonical
 *     events: public comment -> status_notes, closed, echo, GRC-born
 *     requests listed, updates of unknown requests;
 *   - 503 with an errors body when the hub does not accept (an instance on a
 *     recording stand-in for the hub).
 *
 * Fixtures: tests/data/fixtures/open311/ (copies of the shared collection);
 * a missing file fails the test.
 */
#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "testsupport.h"
#include "hub.h"
#include "instance.h"
#include "event_int.h"
#include "jsonschema.h"
#include "mapping.h"
#include "options.h"
#include "errlist.h"
#include "yamltree.h"
#include "../../connectors/open311/open311_int.h"

extern const relais_connector relais_connector_open311;

/* ---- fixtures, HTTP, schemas ------------------------------------------------ */

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

typedef struct resp {
    long  status;
    char  ctype[128];
    char *body;
    size_t len;
} resp;

static size_t on_data(char *p, size_t s, size_t n, void *u)
{
    resp *r = u;
    char *nb = realloc(r->body, r->len + s * n + 1);
    if (!nb) return 0;
    memcpy(nb + r->len, p, s * n);
    r->body = nb;
    r->len += s * n;
    nb[r->len] = '\0';
    return s * n;
}

static resp http(const char *method, const char *url, const char *body, const char *ctype)
{
    resp r = { 0 };
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    char line[256];
    if (ctype) {
        snprintf(line, sizeof line, "Content-Type: %s", ctype);
        hl = curl_slist_append(hl, line);
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK) fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.ctype, sizeof r.ctype, "%s", ct ? ct : "");
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    if (!r.body) r.body = calloc(1, 1);
    return r;
}

static relais_schema_set *SCHEMAS;

static void load_schemas(void)
{
    if (SCHEMAS) return;
    static const char *const files[] = { "service.json", "services.json", "service-definition.json", "request.json",
                                         "requests.json", NULL };
    SCHEMAS = relais_schema_set_new();
    char err[512];
    for (size_t i = 0; files[i]; i++) {
        char rel[128], uri[1200], abs[1024];
        snprintf(rel, sizeof rel, "schema/%s", files[i]);
        if (!realpath(fixture(rel), abs)) fail_msg("realpath %s", rel);
        json_error_t je;
        json_t *doc = json_load_file(abs, 0, &je);
        if (!doc) fail_msg("%s: %s", abs, je.text);
        snprintf(uri, sizeof uri, "file://%s", abs);
        if (relais_schema_set_add(SCHEMAS, doc, uri, files[i], err, sizeof err) != 0) fail_msg("add %s: %s", files[i], err);
        json_decref(doc);
    }
    if (relais_schema_set_compile(SCHEMAS, err, sizeof err) != 0) fail_msg("compile the GeoReport schemas: %s", err);
}

/* The answer must be valid JSON valid against schema `name` (a fixture file). */
static json_t *valid_json(const resp *r, const char *name)
{
    load_schemas();
    if (strcmp(r->ctype, "application/json; charset=utf-8") != 0) fail_msg("content type '%s'", r->ctype);
    json_error_t je;
    json_t *v = json_loads(r->body, 0, &je);
    if (!v) fail_msg("not JSON (%s): %s", je.text, r->body);
    char abs[1024], uri[1200], rel[128];
    snprintf(rel, sizeof rel, "schema/%s", name);
    if (!realpath(fixture(rel), abs)) fail_msg("realpath");
    snprintf(uri, sizeof uri, "file://%s", abs);
    const relais_schema *sc = relais_schema_set_get(SCHEMAS, uri);
    assert_non_null(sc);
    relais_schema_fault f[4];
    size_t nf = 0;
    if (!relais_schema_validate(sc, v, "$", f, 4, &nf))
        fail_msg("answer not valid against %s: %s: %s\n%s", name, f[0].path, f[0].message, r->body);
    return v;
}

/* An errors body as the spec's example: [{"code": N, "description": "..."}]. */
static void check_errors_json(const resp *r, long code, const char *needle)
{
    assert_int_equal(r->status, code);
    assert_string_equal(r->ctype, "application/json; charset=utf-8");
    json_t *ex = json_load_file(fixture("examples/error_403.json"), 0, NULL);
    assert_non_null(ex);
    json_t *v = json_loads(r->body, 0, NULL);
    if (!json_is_array(v) || json_array_size(v) != 1) fail_msg("errors body: %s", r->body);
    json_t *e = json_array_get(v, 0), *x = json_array_get(ex, 0);
    assert_int_equal(json_object_size(e), json_object_size(x));          /* code, description */
    assert_int_equal(json_integer_value(json_object_get(e, "code")), code);
    const char *d = json_string_value(json_object_get(e, "description"));
    assert_non_null(d);
    if (needle && !strstr(d, needle)) fail_msg("'%s' not in '%s'", needle, d);
    json_decref(v);
    json_decref(ex);
}

/* XML: well formed, root element `root`, every child of the root named `item`. */
static xmlDocPtr valid_xml(const resp *r, const char *root, const char *item)
{
    assert_string_equal(r->ctype, "text/xml; charset=utf-8");
    xmlDocPtr d = xmlReadMemory(r->body, (int)r->len, "answer.xml", NULL, XML_PARSE_NONET | XML_PARSE_NOERROR);
    if (!d) fail_msg("XML answer does not parse: %s", r->body);
    xmlNodePtr el = xmlDocGetRootElement(d);
    assert_string_equal((const char *)el->name, root);
    for (xmlNodePtr c = el->children; item && c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) assert_string_equal((const char *)c->name, item);
    return d;
}

static char *xml_text_of(xmlDocPtr d, const char *path1, const char *path2)
{
    xmlNodePtr el = xmlDocGetRootElement(d)->children;
    for (; el; el = el->next)
        if (el->type == XML_ELEMENT_NODE && !strcmp((const char *)el->name, path1)) break;
    if (!el) return NULL;
    if (!path2) return (char *)xmlNodeGetContent(el);
    for (xmlNodePtr c = el->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && !strcmp((const char *)c->name, path2)) return (char *)xmlNodeGetContent(c);
    return NULL;
}

static void resp_free(resp *r) { free(r->body); r->body = NULL; }

/* ---- the hub ------------------------------------------------------------------ */

typedef struct fixture_t {
    char db[512];
    char state[128];
    char mapping[128];
    char port_file[128];
    relais_config *cfg;
    relais_hub *hub;
    char base[128];
} fixture_t;

static fixture_t *F;

static int setup(void **st)
{
    F = calloc(1, sizeof *F);
    setenv("O311_TEST_KEYS", "key-one, xyz", 1);
    snprintf(F->db, sizeof F->db, "%s", ts_fresh_database("o311srv"));
    snprintf(F->state, sizeof F->state, "/tmp/relais-o311srv-%d", (int)getpid());
    /* a copy of the shipped mapping, changed by test_reload */
    snprintf(F->mapping, sizeof F->mapping, "/tmp/relais-o311srv-%d.yaml", (int)getpid());
    size_t mlen;
    char *mtext = ts_read_file(ts_source_path("connectors/open311/mappings/server.yaml"), &mlen);
    FILE *mf = fopen(F->mapping, "w");
    assert_non_null(mf);
    assert_int_equal(fwrite(mtext, 1, mlen, mf), mlen);
    fclose(mf);
    free(mtext);
    const char *mapping = F->mapping;
    snprintf(F->port_file, sizeof F->port_file, "/tmp/relais-o311srv-%d.port", (int)getpid());
    char yaml[8192];
    snprintf(yaml, sizeof yaml,
             "hub: { name: t, tenant: ville, admin_listen: \"127.0.0.1:0\", state_dir: %s, log_level: warn }\n"
             "bus: { brokers: embedded, partitions: 1 }\n"
             "journal: { conninfo: \"%s\" }\n"
             "delivery: { workers: 2, poll_interval: 100ms, backoff_initial: 100ms, backoff_max: 200ms }\n"
             "connectors:\n"
             "  - { name: open311, type: open311, mode: source, package: open311, role: server,\n"
             "      listen: \"127.0.0.1:0\", api_keys: \"env:O311_TEST_KEYS\", jurisdiction_id: ville.example,\n"
             "      path_prefix: /open311/v2, contact: \"Mairie, 01 02 03 04 05\", port_file: %s, mapping: %s }\n"
             "  - { name: open311-status, type: open311, mode: sink, package: open311, role: server, mapping: %s }\n"
             "routes:\n"
             "  - { name: none, match: \"test.relais.nothing\", to: [open311-status] }\n",
             F->state, F->db, F->port_file, mapping, mapping);
    relais_errlist errs;
    relais_errlist_init(&errs);
    F->cfg = relais_config_load_buffer("o311.yaml", yaml, strlen(yaml), &errs);
    if (!F->cfg) { relais_errlist_print(&errs, stderr); fail_msg("config"); }
    relais_errlist_free(&errs);
    char err[512];
    F->hub = relais_hub_new(F->cfg, err, sizeof err);
    if (!F->hub) fail_msg("hub: %s", err);
    if (relais_hub_start(F->hub, err, sizeof err) != 0) fail_msg("start: %s", err);
    int port = o311_ctx_port(relais_hub_instance(F->hub, "open311")->ctx);
    assert_true(port > 0);
    snprintf(F->base, sizeof F->base, "http://127.0.0.1:%d/open311/v2", port);
    for (int i = 0; i < 300 && !relais_hub_accepting(F->hub); i++) ts_sleep_ms(50);
    assert_true(relais_hub_accepting(F->hub));
    *st = F;
    return 0;
}

static int teardown(void **st)
{
    relais_hub_destroy(F->hub);
    relais_config_destroy(F->cfg);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", F->state);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", F->state);
    unlink(F->mapping);
    unlink(F->port_file);
    free(F);
    relais_schema_set_destroy(SCHEMAS);
    SCHEMAS = NULL;
    return 0;
}

static resp get(const char *path)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", F->base, path);
    return http("GET", url, NULL, NULL);
}

static resp post_form(const char *path, const char *form)
{
    char url[1024];
    snprintf(url, sizeof url, "%s%s", F->base, path);
    return http("POST", url, form, "application/x-www-form-urlencoded; charset=utf-8");
}

static long sql_long(const char *q) { return ts_sql_long(F->db, q); }

/* POST a pothole; the service_request_id answered. */
#define POTHOLE "api_key=xyz&jurisdiction_id=ville.example&service_code=VOI-03&lat=48.7309&long=2.2713" \
                "&address_string=12+rue+de+la+Mairie&email=camille.martin%40example.fr&first_name=Camille" \
                "&last_name=Martin&phone=111111111&description=Nid+de+poule+devant+le+12" \
                "&media_url=https%3A%2F%2Fphotos.example.fr%2Fp%2F1.jpg&attribute[DANGER]=oui&attribute[PROFONDEUR]=8"
/* the same form: other field order, the other api_key, spaces as %20 */
#define POTHOLE_AGAIN "attribute[PROFONDEUR]=8&attribute[DANGER]=oui&description=Nid%20de%20poule%20devant%20le%2012" \
                "&service_code=VOI-03&long=2.2713&lat=48.7309&api_key=key-one&jurisdiction_id=ville.example" \
                "&address_string=12%20rue%20de%20la%20Mairie&email=camille.martin%40example.fr&first_name=Camille" \
                "&last_name=Martin&phone=111111111&media_url=https%3A%2F%2Fphotos.example.fr%2Fp%2F1.jpg"

static char ID[64], TOKEN[64];

static void post_pothole(void)
{
    if (ID[0]) return;
    resp r = post_form("/requests.json", POTHOLE);
    if (r.status != 200) fail_msg("POST answered %ld: %s", r.status, r.body);
    json_t *v = json_loads(r.body, 0, NULL);
    json_t *first = json_array_get(v, 0);
    snprintf(ID, sizeof ID, "%s", json_string_value(json_object_get(first, "service_request_id")));
    snprintf(TOKEN, sizeof TOKEN, "%s", json_string_value(json_object_get(first, "token")));
    assert_int_equal(strlen(ID), O311_ID_LEN);
    assert_int_equal(strlen(TOKEN), O311_TOKEN_LEN);
    assert_true(json_is_null(json_object_get(first, "account_id")));
    assert_non_null(strstr(json_string_value(json_object_get(first, "service_notice")), "24 heures"));
    json_decref(v);
    resp_free(&r);
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_discovery(void **st)
{
    resp r = get("/discovery.json");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json; charset=utf-8");
    json_t *v = json_loads(r.body, 0, NULL);
    json_t *ex = json_load_file(fixture("examples/discovery.json"), 0, NULL);
    assert_non_null(ex);
    /* the same keys as the spec's example, at both levels */
    const char *k;
    json_t *x;
    json_object_foreach(ex, k, x) assert_non_null(json_object_get(v, k));
    json_t *ep = json_array_get(json_object_get(v, "endpoints"), 0);
    json_object_foreach(json_array_get(json_object_get(ex, "endpoints"), 0), k, x) assert_non_null(json_object_get(ep, k));
    assert_string_equal(json_string_value(json_object_get(ep, "specification")), "http://wiki.open311.org/GeoReport_v2");
    assert_string_equal(json_string_value(json_object_get(ep, "url")), F->base);
    assert_string_equal(json_string_value(json_object_get(v, "contact")), "Mairie, 01 02 03 04 05");
    json_decref(v);
    json_decref(ex);
    resp_free(&r);
    r = get("/discovery.xml");
    xmlDocPtr d = valid_xml(&r, "discovery", NULL);
    char *fmt = xml_text_of(d, "endpoints", "endpoint");
    assert_non_null(strstr(fmt, "application/json"));
    xmlFree(fmt);
    xmlFreeDoc(d);
    resp_free(&r);
}

static void test_services(void **st)
{
    resp r = get("/services.json?jurisdiction_id=ville.example");
    json_t *v = valid_json(&r, "services.json");
    assert_int_equal(json_array_size(v), 5);
    json_t *voi = json_array_get(v, 0);
    assert_string_equal(json_string_value(json_object_get(voi, "service_code")), "VOI-03");
    assert_string_equal(json_string_value(json_object_get(voi, "service_name")), "Nids de poule");
    assert_string_equal(json_string_value(json_object_get(voi, "group")), "voirie");
    assert_true(json_is_true(json_object_get(voi, "metadata")));
    assert_true(json_is_false(json_object_get(json_array_get(v, 3), "metadata")));   /* ESV-01: no attributes */
    json_decref(v);
    resp_free(&r);
    r = get("/services.xml");
    xmlDocPtr d = valid_xml(&r, "services", "service");
    char *code = xml_text_of(d, "service", "service_code");
    assert_string_equal(code, "VOI-03");
    xmlFree(code);
    xmlFreeDoc(d);
    resp_free(&r);

    r = get("/services/VOI-03.json");
    v = valid_json(&r, "service-definition.json");
    json_t *attrs = json_object_get(v, "attributes");
    assert_int_equal(json_array_size(attrs), 2);
    json_t *danger = json_array_get(attrs, 0);
    assert_string_equal(json_string_value(json_object_get(danger, "code")), "DANGER");
    assert_string_equal(json_string_value(json_object_get(danger, "datatype")), "singlevaluelist");
    assert_true(json_is_true(json_object_get(danger, "required")));
    assert_int_equal(json_integer_value(json_object_get(danger, "order")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(danger, "values"), 0), "key")), "oui");
    json_decref(v);
    resp_free(&r);
    r = get("/services/VOI-03.xml");
    d = valid_xml(&r, "service_definition", NULL);
    xmlNodePtr at = xmlDocGetRootElement(d)->children;
    while (at && (at->type != XML_ELEMENT_NODE || strcmp((const char *)at->name, "attributes"))) at = at->next;
    assert_non_null(at);
    int n = 0;
    for (xmlNodePtr c = at->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE) { assert_string_equal((const char *)c->name, "attribute"); n++; }
    assert_int_equal(n, 2);
    xmlFreeDoc(d);
    resp_free(&r);

    r = get("/services/NOPE.json");
    check_errors_json(&r, 404, "NOPE");
    resp_free(&r);
    r = get("/services/NOPE.xml");
    assert_int_equal(r.status, 404);
    d = valid_xml(&r, "errors", "error");
    xmlFreeDoc(d);
    resp_free(&r);
}

static void test_post_once_and_twice(void **st)
{
    post_pothole();
    char q[512];
    snprintf(q, sizeof q, "SELECT count(*) FROM events WHERE source='open311' AND subject='request/o311-%s' "
             "AND type='fr.relais.grc.request.created.v1'", ID);
    assert_int_equal(sql_long(q), 1);
    /* the mapping made the canonical data: category from the service list, the citizen */
    snprintf(q, sizeof q, "SELECT body->'data'->>'category' || '|' || (body->'data'->>'tracking_code') || '|' || "
             "(body->'data'->'requester'->'identity'->>'family_name') || '|' || ((body->'data'->'location'->'point'->'lat')::float8)::text "
             "FROM events WHERE subject='request/o311-%s'", ID);
    char *got = ts_sql(F->db, q);
    char want[256];
    snprintf(want, sizeof want, "Nids de poule|%s|Martin|48.7309", ID);
    assert_string_equal(got, want);
    free(got);
    /* no api_key in the journal */
    assert_int_equal(sql_long("SELECT count(*) FROM events WHERE body::text LIKE '%xyz%'"), 0);

    /* the same form again (a retry, a double click): same id, no second event */
    resp r = post_form("/requests.xml", POTHOLE_AGAIN);
    assert_int_equal(r.status, 200);
    xmlDocPtr d = valid_xml(&r, "service_requests", "request");
    char *id = xml_text_of(d, "request", "service_request_id");
    assert_string_equal(id, ID);
    xmlFree(id);
    xmlFreeDoc(d);
    resp_free(&r);
    assert_int_equal(sql_long("SELECT count(*) FROM events WHERE source='open311'"), 1);
    /* the JSON answer of a POST holds to the spec's example's keys */
    r = post_form("/requests.json", POTHOLE);
    json_t *v = json_loads(r.body, 0, NULL);
    json_t *ex = json_load_file(fixture("examples/post_request_response.json"), 0, NULL);
    const char *k;
    json_t *x;
    json_object_foreach(json_array_get(ex, 0), k, x) assert_non_null(json_object_get(json_array_get(v, 0), k));
    json_decref(v);
    json_decref(ex);
    resp_free(&r);
    assert_int_equal(sql_long("SELECT count(*) FROM events WHERE source='open311'"), 1);
    /* a different request gets another id and another event */
    r = post_form("/requests.json", "api_key=xyz&service_code=ECL-01&address_string=3+place+de+la+Gare");
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, ID));
    resp_free(&r);
    assert_int_equal(sql_long("SELECT count(*) FROM events WHERE source='open311'"), 2);
    /* the cross-reference of the Open311 id */
    snprintf(q, sizeof q, "SELECT local_id FROM xref WHERE package='open311' AND canonical_id='request/o311-%s'", ID);
    got = ts_sql(F->db, q);
    assert_string_equal(got, ID);
    free(got);
}

static void test_get_requests(void **st)
{
    post_pothole();
    char path[256];
    snprintf(path, sizeof path, "/requests/%s.json", ID);
    resp r = get(path);
    json_t *v = valid_json(&r, "requests.json");
    json_t *one = json_array_get(v, 0);
    assert_int_equal(json_array_size(v), 1);
    assert_string_equal(json_string_value(json_object_get(one, "service_request_id")), ID);
    assert_string_equal(json_string_value(json_object_get(one, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(one, "service_code")), "VOI-03");
    assert_string_equal(json_string_value(json_object_get(one, "address")), "12 rue de la Mairie");
    assert_true(json_number_value(json_object_get(one, "lat")) == 48.7309);
    assert_null(json_object_get(one, "email"));          /* personal data is not listed */
    json_t *ex = json_load_file(fixture("examples/request.json"), 0, NULL);
    const char *k;
    json_t *x;
    json_object_foreach(json_array_get(ex, 0), k, x) assert_non_null(json_object_get(one, k));
    assert_int_equal(json_object_size(one), json_object_size(json_array_get(ex, 0)));
    json_decref(ex);
    json_decref(v);
    resp_free(&r);
    snprintf(path, sizeof path, "/requests/%s.xml", ID);
    r = get(path);
    xmlDocPtr d = valid_xml(&r, "service_requests", "request");
    char *s = xml_text_of(d, "request", "service_code");
    assert_string_equal(s, "VOI-03");
    xmlFree(s);
    xmlFreeDoc(d);
    resp_free(&r);
    snprintf(path, sizeof path, "/request/%s.json", ID);            /* the swagger's path */
    r = get(path);
    json_decref(valid_json(&r, "requests.json"));
    resp_free(&r);
    r = get("/requests/000000000000000.json");
    check_errors_json(&r, 404, "was not found");
    resp_free(&r);

    /* the list and its filters */
    r = get("/requests.json");
    v = valid_json(&r, "requests.json");
    assert_true(json_array_size(v) >= 1);
    assert_non_null(strstr(r.body, ID));
    json_decref(v);
    resp_free(&r);
    r = get("/requests.xml?status=open");
    d = valid_xml(&r, "service_requests", "request");
    assert_non_null(strstr(r.body, ID));
    xmlFreeDoc(d);
    resp_free(&r);
    static const char *const none[] = { "/requests.json?status=closed", "/requests.json?service_code=ESV-01",
                                        "/requests.json?start_date=2099-01-01T00:00:00Z",
                                        "/requests.json?end_date=2020-01-01", NULL };
    for (size_t i = 0; none[i]; i++) {
        r = get(none[i]);
        v = valid_json(&r, "requests.json");
        if (strstr(r.body, ID)) fail_msg("%s lists %s", none[i], ID);
        json_decref(v);
        resp_free(&r);
    }
    r = get("/requests.json?service_code=VOI-03,ECL-01&status=open,closed");
    v = valid_json(&r, "requests.json");
    assert_non_null(strstr(r.body, ID));
    json_decref(v);
    resp_free(&r);
    snprintf(path, sizeof path, "/requests.json?service_request_id=%s,999&status=closed", ID);
    r = get(path);                                          /* ids override the other arguments */
    v = valid_json(&r, "requests.json");
    assert_int_equal(json_array_size(v), 1);
    json_decref(v);
    resp_free(&r);
    r = get("/requests.json?status=pending");
    check_errors_json(&r, 400, "status");
    resp_free(&r);
    r = get("/requests.json?start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z");
    check_errors_json(&r, 400, "90 days");
    resp_free(&r);
    r = get("/requests.json?start_date=yesterday");
    check_errors_json(&r, 400, "start_date");
    resp_free(&r);
    r = get("/requests.json?jurisdiction_id=elsewhere");
    check_errors_json(&r, 404, "jurisdiction_id");
    resp_free(&r);

    /* tokens */
    snprintf(path, sizeof path, "/tokens/%s.json", TOKEN);
    r = get(path);
    assert_int_equal(r.status, 200);
    v = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "service_request_id")), ID);
    assert_string_equal(json_string_value(json_object_get(json_array_get(v, 0), "token")), TOKEN);
    json_decref(v);
    resp_free(&r);
    snprintf(path, sizeof path, "/tokens/%s.xml", TOKEN);
    r = get(path);
    d = valid_xml(&r, "service_requests", "request");
    s = xml_text_of(d, "request", "service_request_id");
    assert_string_equal(s, ID);
    xmlFree(s);
    xmlFreeDoc(d);
    resp_free(&r);
    r = get("/tokens/0123456789abcdef0123456789abcdef.json");
    check_errors_json(&r, 404, "token");
    resp_free(&r);
}

static void test_post_refusals(void **st)
{
    long before = sql_long("SELECT count(*) FROM events");
    resp r = post_form("/requests.json", "api_key=wrong&service_code=VOI-03&lat=1&long=2&attribute[DANGER]=non");
    check_errors_json(&r, 403, NULL);
    /* exactly the spec's example body */
    json_t *v = json_loads(r.body, 0, NULL), *ex = json_load_file(fixture("examples/error_403.json"), 0, NULL);
    assert_true(json_equal(v, ex));
    json_decref(v);
    json_decref(ex);
    resp_free(&r);
    r = post_form("/requests.xml", "service_code=VOI-03&lat=1&long=2&attribute[DANGER]=non");
    assert_int_equal(r.status, 403);
    xmlDocPtr d = valid_xml(&r, "errors", "error");
    /* read from memory: the hub's safe parser denies libxml2 every file load */
    char *extext = NULL;
    size_t exlen = 0;
    FILE *xf = fopen(fixture("examples/error_403.xml"), "r");
    assert_non_null(xf);
    assert_int_equal(getdelim(&extext, &exlen, '\0', xf) > 0, 1);
    fclose(xf);
    xmlDocPtr exd = xmlReadMemory(extext, (int)strlen(extext), "error_403.xml", NULL, XML_PARSE_NONET);
    free(extext);
    assert_non_null(exd);
    char *a = xml_text_of(d, "error", "description"), *b = xml_text_of(exd, "error", "description");
    assert_string_equal(a, b);
    xmlFree(a);
    xmlFree(b);
    a = xml_text_of(d, "error", "code");
    assert_string_equal(a, "403");
    xmlFree(a);
    xmlFreeDoc(d);
    xmlFreeDoc(exd);
    resp_free(&r);

    static const struct { const char *form; long code; const char *needle; } bad[] = {
        { "api_key=xyz&lat=1&long=2", 400, "service_code" },
        { "api_key=xyz&service_code=NOPE&lat=1&long=2", 400, "NOPE" },
        { "api_key=xyz&service_code=ECL-01", 400, "location" },
        { "api_key=xyz&service_code=ECL-01&lat=1", 400, "together" },
        { "api_key=xyz&service_code=ECL-01&lat=100&long=2", 400, "WGS-84" },
        { "api_key=xyz&service_code=VOI-03&lat=1&long=2", 400, "attribute DANGER is required" },
        { "api_key=xyz&service_code=VOI-03&lat=1&long=2&attribute[DANGER]=peut-etre", 400, "DANGER" },
        { "api_key=xyz&service_code=VOI-03&lat=1&long=2&attribute[DANGER]=oui&attribute[PROFONDEUR]=beaucoup", 400, "PROFONDEUR" },
        { "api_key=xyz&service_code=ECL-01&lat=1&long=2&jurisdiction_id=elsewhere", 404, "jurisdiction_id" },
        { "api_key=xyz&service_code=ECL-01&lat=1&long=2&attribute[a b]=1", 400, "attribute" },
        { "api_key=xyz&service_code=ECL-01&lat=1&long=2&description=%FF", 400, "UTF-8" },
        { NULL, 0, NULL }
    };
    for (size_t i = 0; bad[i].form; i++) {
        r = post_form("/requests.json", bad[i].form);
        check_errors_json(&r, bad[i].code, bad[i].needle);
        resp_free(&r);
    }
    /* the canonical schema refuses what the spec allows here: 400 with the reason */
    r = post_form("/requests.json", "api_key=xyz&service_code=ECL-01&lat=1&long=2&media_url=not%20a%20url");
    check_errors_json(&r, 400, "refused");
    resp_free(&r);
    /* transport: content type, method, size, format */
    char url[512];
    snprintf(url, sizeof url, "%s/requests.json", F->base);
    r = http("POST", url, "{\"service_code\":\"ECL-01\"}", "application/json");
    check_errors_json(&r, 400, "x-www-form-urlencoded");
    resp_free(&r);
    snprintf(url, sizeof url, "%s/services.json", F->base);
    r = http("POST", url, "a=b", "application/x-www-form-urlencoded");
    check_errors_json(&r, 405, "GET");
    resp_free(&r);
    snprintf(url, sizeof url, "%s/requests.json", F->base);
    r = http("DELETE", url, NULL, NULL);
    check_errors_json(&r, 405, "GET or POST");
    resp_free(&r);
    char *big = malloc(100 * 1024);
    memset(big, 'a', 100 * 1024 - 1);
    big[0] = 'x'; big[1] = '=';
    big[100 * 1024 - 1] = '\0';
    r = http("POST", url, big, "application/x-www-form-urlencoded");
    check_errors_json(&r, 413, "too large");
    resp_free(&r);
    free(big);
    r = get("/services.html");
    check_errors_json(&r, 404, ".json or .xml");
    resp_free(&r);
    char other[256];
    snprintf(other, sizeof other, "%.*s/services.json", (int)(strstr(F->base, "/open311/v2") - F->base), F->base);
    r = http("GET", other, NULL, NULL);                 /* outside path_prefix */
    assert_int_equal(r.status, 404);
    resp_free(&r);
    assert_int_equal(sql_long("SELECT count(*) FROM events"), before);
}

/* multipart/form-data, as some clients send it with a photo: the fields are
 * read, the file part is left out; the port file names the bound port */
static void test_post_multipart(void **st)
{
    char url[512];
    snprintf(url, sizeof url, "%s/requests.json", F->base);
    CURL *h = curl_easy_init();
    curl_mime *mime = curl_mime_init(h);
    static const char *const kv[][2] = { { "api_key", "xyz" }, { "service_code", "ESV-01" },
                                         { "address_string", "square Victor Hugo" }, { "description", "Haie à tailler" } };
    for (size_t i = 0; i < 4; i++) {
        curl_mimepart *p = curl_mime_addpart(mime);
        curl_mime_name(p, kv[i][0]);
        curl_mime_data(p, kv[i][1], CURL_ZERO_TERMINATED);
    }
    curl_mimepart *file = curl_mime_addpart(mime);
    curl_mime_name(file, "media");
    curl_mime_filename(file, "haie.jpg");
    curl_mime_data(file, "\xff\xd8\xff\xe0 not really a jpeg", CURL_ZERO_TERMINATED);
    resp r = { 0 };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.status);
    curl_mime_free(mime);
    curl_easy_cleanup(h);
    if (r.status != 200) fail_msg("multipart POST: %ld %s", r.status, r.body);
    json_t *v = json_loads(r.body, 0, NULL);
    char id[64];
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(json_array_get(v, 0), "service_request_id")));
    json_decref(v);
    resp_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/requests/%s.json", id);
    r = get(path);
    assert_non_null(strstr(r.body, "Haie à tailler"));
    assert_null(strstr(r.body, "haie.jpg"));
    resp_free(&r);
    size_t len;
    char *pf = ts_read_file(F->port_file, &len);
    assert_int_equal(atoi(pf), o311_ctx_port(relais_hub_instance(F->hub, "open311")->ctx));
    free(pf);
}

static relais_answer deliver_status(const char *type, const char *subject, const char *data_json, relais_verdict *v)
{
    relais_instance *inst = relais_hub_instance(F->hub, "open311-status");
    json_t *data = json_loads(data_json, 0, NULL);
    assert_non_null(data);
    relais_record rec = { .record_id = subject, .type = type, .subject = subject, .data = data };
    char err[256];
    relais_event *ev = relais_event_build(&rec, "grc-in", "ville", err, sizeof err);
    if (!ev) fail_msg("event: %s", err);
    json_decref(data);
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    *v = inst->desc->deliver(inst->ctx, ev, NULL, &ans);
    relais_event_unref(ev);
    return ans;
}

static json_t *request_view(const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/requests/%s.json", id);
    resp r = get(path);
    if (r.status != 200) fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *v = valid_json(&r, "requests.json");
    resp_free(&r);
    json_t *one = json_incref(json_array_get(v, 0));
    json_decref(v);
    return one;
}

static void test_status_sink(void **st)
{
    post_pothole();
    char subject[128];
    snprintf(subject, sizeof subject, "request/o311-%s", ID);
    relais_verdict v;
    /* the echo of our own creation stores nothing twice */
    relais_answer a = deliver_status("fr.relais.grc.request.created.v1", subject,
                                     "{\"channel\":\"web\",\"category\":\"Nids de poule\",\"status\":\"new\","
                                     "\"opened_at\":\"2026-11-25T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    assert_non_null(strstr(a.detail, "echo"));
    assert_string_equal(a.local_id, ID);
    json_t *one = request_view(ID);
    assert_string_equal(json_string_value(json_object_get(one, "description")), "Nid de poule devant le 12");
    json_decref(one);

    /* an internal comment: status moves, no notes */
    a = deliver_status("fr.relais.grc.request.updated.v1", subject,
                       "{\"status\":\"in_progress\",\"updated_at\":\"2030-01-02T09:00:00+01:00\","
                       "\"comment\":\"Voir le concessionnaire\",\"comment_visibility\":\"internal\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    one = request_view(ID);
    assert_true(json_is_null(json_object_get(one, "status_notes")));
    assert_string_equal(json_string_value(json_object_get(one, "updated_datetime")), "2030-01-02T09:00:00+01:00");
    json_decref(one);
    /* a public comment becomes the status notes, with the service in charge */
    a = deliver_status("fr.relais.grc.request.updated.v1", subject,
                       "{\"status\":\"in_progress\",\"updated_at\":\"2030-01-03T09:00:00+01:00\",\"comment\":"
                       "\"Intervention prévue jeudi\",\"comment_visibility\":\"public\",\"service\":{\"label\":\"Voirie\"}}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    one = request_view(ID);
    assert_string_equal(json_string_value(json_object_get(one, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(one, "status_notes")), "Intervention prévue jeudi");
    assert_string_equal(json_string_value(json_object_get(one, "agency_responsible")), "Voirie");
    json_decref(one);
    /* an older update (a late redelivery) does not go back */
    a = deliver_status("fr.relais.grc.request.updated.v1", subject,
                       "{\"status\":\"waiting\",\"updated_at\":\"2030-01-01T09:00:00+01:00\",\"comment\":\"vieux\","
                       "\"comment_visibility\":\"public\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    assert_non_null(strstr(a.detail, "older"));
    one = request_view(ID);
    assert_string_equal(json_string_value(json_object_get(one, "status_notes")), "Intervention prévue jeudi");
    json_decref(one);
    /* closed */
    a = deliver_status("fr.relais.grc.request.closed.v1", subject,
                       "{\"closed_at\":\"2030-01-05T16:30:00+01:00\",\"outcome\":\"resolved\",\"answer\":\"Rebouché.\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    one = request_view(ID);
    assert_string_equal(json_string_value(json_object_get(one, "status")), "closed");
    assert_string_equal(json_string_value(json_object_get(one, "status_notes")), "Rebouché.");
    json_decref(one);
    resp r = get("/requests.json?status=closed");
    assert_non_null(strstr(r.body, ID));
    resp_free(&r);

    /* a request born in the GRC is listed, with its service_code */
    a = deliver_status("fr.relais.grc.request.created.v1", "request/wcs-voirie-12",
                       "{\"channel\":\"web\",\"category\":\"Éclairage public\",\"status\":\"new\","
                       "\"opened_at\":\"2026-11-25T10:00:00+01:00\",\"description\":\"Lampadaire éteint\","
                       "\"location\":{\"point\":{\"lat\":48.7,\"lon\":2.27}}}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    assert_string_equal(a.local_id, "wcs-voirie-12");
    one = request_view("wcs-voirie-12");
    assert_string_equal(json_string_value(json_object_get(one, "service_code")), "ECL-01");
    assert_string_equal(json_string_value(json_object_get(one, "status")), "open");
    json_decref(one);
    r = get("/requests.json?service_code=ECL-01&start_date=2026-11-01T00:00:00Z");
    assert_non_null(strstr(r.body, "wcs-voirie-12"));
    resp_free(&r);
    /* delivered again: one entry, unchanged */
    a = deliver_status("fr.relais.grc.request.created.v1", "request/wcs-voirie-12",
                       "{\"channel\":\"web\",\"category\":\"Éclairage public\",\"status\":\"new\","
                       "\"opened_at\":\"2026-11-25T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    /* its rejection closes it */
    a = deliver_status("fr.relais.grc.request.updated.v1", "request/wcs-voirie-12",
                       "{\"status\":\"rejected\",\"updated_at\":\"2026-11-26T10:00:00+01:00\",\"comment\":\"Voie privée\","
                       "\"comment_visibility\":\"public\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    one = request_view("wcs-voirie-12");
    assert_string_equal(json_string_value(json_object_get(one, "status")), "closed");
    assert_string_equal(json_string_value(json_object_get(one, "description")), "Lampadaire éteint");
    json_decref(one);

    /* updates of requests not stored: ours wait (RETRY), others are ignored (OK) */
    a = deliver_status("fr.relais.grc.request.updated.v1", "request/o311-123456789012345",
                       "{\"status\":\"in_progress\",\"updated_at\":\"2026-11-26T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_RETRY);
    a = deliver_status("fr.relais.grc.request.updated.v1", "request/GRC-unknown",
                       "{\"status\":\"in_progress\",\"updated_at\":\"2026-11-26T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    assert_non_null(strstr(a.detail, "not listed"));
    r = get("/requests/GRC-unknown.json");
    assert_int_equal(r.status, 404);
    resp_free(&r);
    /* the event of a POST overtakes the server's own write: stored from the
     * event, then completed by the server, keeping the status it got since */
    static const char *const fields[][2] = { { "service_code", "PRO-02" }, { "address_string", "parvis de la gare" },
                                             { "description", "Tags sur le mur" }, { "attribute[NATURE][]", "tags" } };
    json_t *recd = json_object();
    char err[256], hash[65], fid[O311_ID_LEN + 1], fsubject[64];
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(o311_form_add(recd, fields[i][0], fields[i][1], strlen(fields[i][1]), err, sizeof err), 0);
    assert_int_equal(o311_record_hash(recd, hash), 0);
    json_decref(recd);
    o311_id_from_hash(hash, fid);
    snprintf(fsubject, sizeof fsubject, "request/o311-%s", fid);
    a = deliver_status("fr.relais.grc.request.created.v1", fsubject,
                       "{\"channel\":\"web\",\"category\":\"Propreté\",\"status\":\"new\","
                       "\"opened_at\":\"2026-11-25T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    a = deliver_status("fr.relais.grc.request.updated.v1", fsubject,
                       "{\"status\":\"in_progress\",\"updated_at\":\"2030-01-01T09:00:00+01:00\",\"comment\":"
                       "\"Nettoyage prévu\",\"comment_visibility\":\"public\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_OK);
    r = post_form("/requests.json", "api_key=xyz&service_code=PRO-02&address_string=parvis+de+la+gare"
                                    "&description=Tags+sur+le+mur&attribute[NATURE][]=tags");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, fid));
    resp_free(&r);
    one = request_view(fid);
    assert_string_equal(json_string_value(json_object_get(one, "address")), "parvis de la gare");
    assert_string_equal(json_string_value(json_object_get(one, "status_notes")), "Nettoyage prévu");
    json_decref(one);
    char tpath[128];
    snprintf(tpath, sizeof tpath, "/tokens/%.32s.json", hash);          /* the server's token: completed too */
    r = get(tpath);
    assert_int_equal(r.status, 200);
    resp_free(&r);

    /* not a request, not an id a URL can carry */
    a = deliver_status("fr.relais.grc.request.updated.v1", "workorder/1",
                       "{\"status\":\"in_progress\",\"updated_at\":\"2026-11-26T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_REJECT);
    a = deliver_status("fr.relais.grc.request.created.v1", "request/a/b",
                       "{\"channel\":\"web\",\"category\":\"Propreté\",\"status\":\"new\","
                       "\"opened_at\":\"2026-11-25T10:00:00+01:00\"}", &v);
    assert_int_equal(v, RELAIS_DELIVER_REJECT);
    assert_non_null(strstr(a.detail, "cannot be a service_request_id"));
}

/* The mappings reloaded (POST /reload, SIGHUP): the service list follows;
 * a list that does not load leaves the previous one. */
static void test_reload(void **st)
{
    size_t len;
    char *text = ts_read_file(F->mapping, &len);
    const char *anchor = "      AUTRE: Autre demande\n";
    char *at = strstr(text, anchor);
    assert_non_null(at);
    FILE *f = fopen(F->mapping, "w");
    fwrite(text, 1, (size_t)(at - text), f);
    fputs("      SIG-01: Signalisation\n", f);
    fputs(at, f);
    fclose(f);
    char err[512];
    assert_true(relais_hub_reload_mappings(F->hub, err, sizeof err) >= 1);
    resp r = get("/services.json");
    json_t *v = valid_json(&r, "services.json");
    assert_int_equal(json_array_size(v), 6);
    assert_non_null(strstr(r.body, "\"SIG-01\""));
    json_decref(v);
    resp_free(&r);
    r = post_form("/requests.json", "api_key=xyz&service_code=SIG-01&address_string=carrefour+Blanche");
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* a valid mapping whose service list is not: the previous list stays */
    free(text);
    text = ts_read_file(F->mapping, &len);
    at = strstr(text, "\ninbound:\n");
    assert_non_null(at);
    f = fopen(F->mapping, "w");
    fwrite(text, 1, (size_t)(at - text) + 1, f);
    fputs("  service_types: {values: {VOI-03: sometimes}}\n", f);
    fputs(at + 1, f);
    fclose(f);
    free(text);
    assert_true(relais_hub_reload_mappings(F->hub, err, sizeof err) >= 1);
    r = get("/services.json");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\"SIG-01\""));
    assert_null(strstr(r.body, "sometimes"));
    resp_free(&r);
}

/* ---- 503 when the hub does not accept: an instance on a recording hub ---- */

static void test_unavailable(void **st)
{
    ts_recorder *rec = ts_recorder_new();
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_mapping *m = relais_mapping_load(ts_source_path("connectors/open311/mappings/server.yaml"), &errs);
    assert_non_null(m);
    relais_errlist_free(&errs);
    char yaml[256], err[512];
    snprintf(yaml, sizeof yaml, "role: server\nlisten: \"127.0.0.1:0\"\napi_keys: \"env:O311_TEST_KEYS\"\n");
    yt_node *map = yt_load_buffer("t.yaml", yaml, strlen(yaml), err, sizeof err);
    o311_config *cfg = calloc(1, sizeof *cfg);
    relais_errlist_init(&errs);
    assert_int_equal(relais_options_apply(relais_connector_open311.options, cfg, RELAIS_MODE_SOURCE, map, NULL, "t.yaml", &errs), 0);
    relais_errlist_free(&errs);
    yt_free(map);
    relais_instance *inst = relais_instance_new("open311", "ville", RELAIS_MODE_SOURCE, &relais_connector_open311, cfg,
                                                ts_recorder_ops(), rec, NULL);
    inst->mapping = m;
    void *ctx = NULL;
    if (relais_connector_open311.init(inst, cfg, &ctx, err, sizeof err) != 0) fail_msg("init: %s", err);
    inst->ctx = ctx;
    assert_int_equal(relais_connector_open311.start(ctx, err, sizeof err), 0);
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/requests.json", o311_ctx_port(ctx));
    const char *form = "api_key=xyz&service_code=ECL-01&lat=1&long=2";

    ts_recorder_set_accepting(rec, 0);
    resp r = http("POST", url, form, "application/x-www-form-urlencoded");
    check_errors_json(&r, 503, "retry later");
    resp_free(&r);
    assert_int_equal(ts_recorder_submit_calls(rec), 0);
    /* accepting, but the journal fails on the submit itself */
    ts_recorder_set_accepting(rec, 1);
    ts_recorder_set_submit_budget(rec, 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/requests.xml", o311_ctx_port(ctx));
    r = http("POST", url, form, "application/x-www-form-urlencoded");
    assert_int_equal(r.status, 503);
    xmlDocPtr d = valid_xml(&r, "errors", "error");
    char *code = xml_text_of(d, "error", "code");
    assert_string_equal(code, "503");
    xmlFree(code);
    xmlFreeDoc(d);
    resp_free(&r);
    assert_int_equal(ts_recorder_naccepted(rec), 0);
    /* the record the hub would have got: hash id, subject, no api_key */
    ts_recorder_set_submit_budget(rec, -1);
    r = http("POST", url, form, "application/x-www-form-urlencoded");
    assert_int_equal(r.status, 503);                  /* the recording hub has no package state */
    resp_free(&r);
    assert_int_equal(ts_recorder_nsubs(rec), 1);
    const ts_submitted *s = ts_recorder_sub(rec, 0);
    assert_int_equal(strlen(s->record_id), 64);
    assert_int_equal(strncmp(s->subject, "request/o311-", 13), 0);
    assert_null(strstr(s->data, "api_key"));
    assert_non_null(strstr(s->data, "\"requested_datetime\""));

    relais_connector_open311.stop(ctx);
    relais_connector_open311.destroy(ctx);
    relais_instance_destroy(inst);
    relais_options_free(relais_connector_open311.options, cfg);
    free(cfg);
    relais_mapping_destroy(m);
    ts_recorder_free(rec);
}

/* Options refused at init, each naming what to fix. */
static void test_init_refusals(void **st)
{
    static const struct { const char *yaml; unsigned mode; int mapped; const char *needle; } cases[] = {
        { "role: server\nlisten: \"127.0.0.1:0\"\napi_keys: \"env:O311_TEST_KEYS\"\n", RELAIS_MODE_SOURCE, 0, "mapping is required" },
        { "role: server\napi_keys: \"env:O311_TEST_KEYS\"\n", RELAIS_MODE_SOURCE, 1, "'listen'" },
        { "role: server\nlisten: \"127.0.0.1:0\"\n", RELAIS_MODE_SOURCE, 1, "'api_keys'" },
        { "role: server\nlisten: \"127.0.0.1:0\"\napi_keys: \"env:O311_TEST_KEYS\"\npath_prefix: v2\n", RELAIS_MODE_SOURCE, 1, "path_prefix" },
        { "role: client\n", RELAIS_MODE_SINK, 1, "'endpoint'" },
        { "role: client\nendpoint: \"ftp://x.example/\"\n", RELAIS_MODE_SINK, 1, "not an http" },
        { NULL, 0, 0, NULL }
    };
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_mapping *m = relais_mapping_load(ts_source_path("connectors/open311/mappings/server.yaml"), &errs);
    relais_errlist_free(&errs);
    for (size_t i = 0; cases[i].yaml; i++) {
        char err[512] = "";
        yt_node *map = yt_load_buffer("t.yaml", cases[i].yaml, strlen(cases[i].yaml), err, sizeof err);
        o311_config *cfg = calloc(1, sizeof *cfg);
        relais_errlist_init(&errs);
        assert_int_equal(relais_options_apply(relais_connector_open311.options, cfg, cases[i].mode, map, NULL, "t.yaml", &errs), 0);
        relais_errlist_free(&errs);
        yt_free(map);
        relais_instance *inst = relais_instance_new("x", "ville", cases[i].mode, &relais_connector_open311, cfg,
                                                    ts_recorder_ops(), NULL, NULL);
        inst->mapping = cases[i].mapped ? m : NULL;
        void *ctx = NULL;
        assert_int_equal(relais_connector_open311.init(inst, cfg, &ctx, err, sizeof err), -1);
        if (!strstr(err, cases[i].needle)) fail_msg("case %zu: '%s' not in '%s'", i, cases[i].needle, err);
        relais_instance_destroy(inst);
        relais_options_free(relais_connector_open311.options, cfg);
        free(cfg);
    }
    relais_mapping_destroy(m);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_post_once_and_twice),
        cmocka_unit_test(test_get_requests),
        cmocka_unit_test(test_post_refusals),
        cmocka_unit_test(test_post_multipart),
        cmocka_unit_test(test_status_sink),
        cmocka_unit_test(test_reload),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_unavailable),
        cmocka_unit_test(test_init_refusals),
    };
    int rc = cmocka_run_group_tests(tests, setup, teardown);
    setenv("O311_TEST_KEYS", "key-one, xyz", 1);
    rc |= cmocka_run_group_tests(alone, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
