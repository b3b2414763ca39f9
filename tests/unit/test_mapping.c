/* Unit tests: the declarative mapping engine (hub/mapping.c, docs/MAPPINGS.md). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "testsupport.h"
#include "mapping.h"
#include "safeparse.h"

static relais_mapping *load(const char *yaml, relais_errlist *errs)
{
    relais_errlist_init(errs);
    return relais_mapping_load_buffer("m.yaml", yaml, strlen(yaml), errs);
}

static relais_mapping *load_ok(const char *yaml)
{
    relais_errlist errs;
    relais_mapping *m = load(yaml, &errs);
    if (!m) relais_errlist_print(&errs, stderr);
    relais_errlist_free(&errs);
    assert_non_null(m);
    return m;
}

/* Load must fail and one error must contain `want` (and carry m.yaml:LINE). */
static void load_fails(const char *yaml, const char *want, int line)
{
    relais_errlist errs;
    relais_mapping *m = load(yaml, &errs);
    assert_null(m);
    int found = 0;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "m.yaml:%d: ", line);
    for (size_t i = 0; i < errs.count; i++)
        if (strstr(errs.msgs[i], want) && strncmp(errs.msgs[i], prefix, strlen(prefix)) == 0) found = 1;
    if (!found) {
        fprintf(stderr, "wanted '%s%s' in:\n", prefix, want);
        relais_errlist_print(&errs, stderr);
    }
    relais_errlist_free(&errs);
    assert_true(found);
}

static json_t *J(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    if (!v) fprintf(stderr, "bad test JSON: %s\n", e.text);
    assert_non_null(v);
    return v;
}

static void assert_json_eq(const json_t *got, const char *want)
{
    json_t *w = J(want);
    if (!json_equal((json_t *)got, w)) {
        char *g = json_dumps(got, JSON_SORT_KEYS);
        fprintf(stderr, "got  %s\nwant %s\n", g, want);
        free(g);
    }
    assert_true(json_equal((json_t *)got, w));
    json_decref(w);
}

static const char *GRC =
    "format: json\n"
    "tables:\n"
    "  intervention:\n"
    "    values:\n"
    "      \"Nids de poule\": VOI-03\n"
    "      \"Éclairage public\": ECL-01\n"
    "  channel:\n"
    "    values: {portail: web, guichet: desk}\n"
    "    default: other\n"
    "inbound:\n"
    "  - when: {from: /kind, equals: closure}\n"
    "    type: fr.relais.grc.request.closed.v1\n"
    "    subject: {template: \"request/{/id}\"}\n"
    "    data:\n"
    "      - to: /answer\n"
    "        from: /answer\n"
    "  - type: fr.relais.grc.request.created.v1\n"
    "    subject: {template: \"request/{/id}\"}\n"
    "    record_id: {from: /id}\n"
    "    correlation_id: {from: /extra/corr}\n"
    "    data:\n"
    "      - to: /category\n"
    "        from: /fields/category\n"
    "        transform: [trim, {table: intervention}]\n"
    "        required: true\n"
    "      - to: /category_label\n"
    "        from: /fields/category\n"
    "        transform: [collapse, upper]\n"
    "      - to: /channel\n"
    "        from: /channel\n"
    "        transform: [{table: channel}]\n"
    "      - to: /requester/name\n"
    "        from: [/user/first, /user/middle, /user/last]\n"
    "        join: \" \"\n"
    "      - to: /opened_at\n"
    "        from: /receipt\n"
    "        transform: [{date: {in: \"%d/%m/%Y %H:%M %z\", out: \"%Y-%m-%dT%H:%M:%SZ\", utc: true}}]\n"
    "      - to: /status\n"
    "        value: new\n"
    "      - to: /priority\n"
    "        from: /prio\n"
    "        as: integer\n"
    "      - to: /urgent\n"
    "        from: /urgent\n"
    "        as: boolean\n"
    "      - to: /location/point/lat\n"
    "        from: /geo/lat\n"
    "        as: number\n"
    "      - to: /deadline\n"
    "        from: /deadline\n"
    "        default: \"2026-12-31\"\n"
    "      - to: /amount_cents\n"
    "        from: /amount\n"
    "        transform: [cents]\n"
    "      - to: /given_names\n"
    "        from: /user/given\n"
    "        transform: [{split: \",\"}]\n"
    "      - to: /tags\n"
    "        each: /tags\n"
    "        data:\n"
    "          - to: \"\"\n"
    "            from: \"\"\n"
    "            transform: [lower]\n"
    "      - to: /attachments\n"
    "        each: /files\n"
    "        data:\n"
    "          - to: /name\n"
    "            from: /filename\n"
    "          - to: /ref\n"
    "            template: \"att-{/n}\"\n";

static void test_json_inbound(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(GRC);
    assert_int_equal(relais_mapping_format(m), RELAIS_MAP_JSON);
    assert_true(relais_mapping_has_inbound(m));
    assert_false(relais_mapping_has_outbound(m));
    const char *const *types = relais_mapping_inbound_types(m);
    assert_string_equal(types[0], "fr.relais.grc.request.closed.v1");
    assert_string_equal(types[1], "fr.relais.grc.request.created.v1");
    assert_null(types[2]);

    json_t *rec = J("{\"id\": 8912, \"fields\": {\"category\": \"  Nids de poule \"},"
                    " \"channel\": \"fax\","
                    " \"receipt\": \"05/03/2026 10:15 +0100\", \"prio\": \"2\", \"urgent\": \"oui\","
                    " \"geo\": {\"lat\": \"48,8566\"}, \"user\": {\"first\": \"Camille\", \"middle\": \"\", \"last\": \"Exemple\", \"given\": \"Camille, Marie ,\"}, \"amount\": \"42,5\", \"extra\": {\"corr\": \"c-1\"},"
                    " \"tags\": [\"Voirie\", \"URGENT\"], \"files\": [{\"filename\": \"a.jpg\", \"n\": 1}, {\"n\": 2}]}");
    relais_mapped_record r = { 0 };
    char err[512] = "";
    int rc = relais_mapping_inbound_json(m, rec, &r, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(r.type, "fr.relais.grc.request.created.v1");
    assert_string_equal(r.subject, "request/8912");
    assert_string_equal(r.record_id, "8912");
    assert_string_equal(r.correlation_id, "c-1");
    assert_json_eq(r.data,
        "{\"category\": \"VOI-03\", \"category_label\": \"NIDS DE POULE\", \"channel\": \"other\","
        " \"requester\": {\"name\": \"Camille Exemple\"}, \"opened_at\": \"2026-03-05T09:15:00Z\","
        " \"status\": \"new\", \"priority\": 2, \"urgent\": true, \"location\": {\"point\": {\"lat\": 48.8566}},"
        " \"deadline\": \"2026-12-31\", \"amount_cents\": 4250, \"given_names\": [\"Camille\", \"Marie\"], \"tags\": [\"voirie\", \"urgent\"],"
        " \"attachments\": [{\"name\": \"a.jpg\", \"ref\": \"att-1\"}, {\"ref\": \"att-2\"}]}");
    relais_mapped_record_clear(&r);

    /* the first case whose `when` holds wins */
    json_t *rec2 = J("{\"id\": \"7\", \"kind\": \"closure\", \"answer\": \"Réparé\"}");
    assert_int_equal(relais_mapping_inbound_json(m, rec2, &r, err, sizeof err), 0);
    assert_string_equal(r.type, "fr.relais.grc.request.closed.v1");
    assert_null(r.record_id);
    assert_json_eq(r.data, "{\"answer\": \"Réparé\"}");
    relais_mapped_record_clear(&r);
    json_decref(rec2);
    json_decref(rec);
    relais_mapping_destroy(m);
}

static void expect_map_error(relais_mapping *m, const char *rec_json, const char *want)
{
    json_t *rec = J(rec_json);
    relais_mapped_record r = { 0 };
    memset(&r, 0, sizeof r);
    char err[512] = "";
    assert_int_equal(relais_mapping_inbound_json(m, rec, &r, err, sizeof err), -1);
    if (!strstr(err, want)) fprintf(stderr, "got '%s', wanted '%s'\n", err, want);
    assert_non_null(strstr(err, want));
    assert_null(r.data);
    relais_mapped_record_clear(&r);
    json_decref(rec);
}

static void test_json_inbound_errors(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(GRC);
    /* the file, the rule's line and the field are named */
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": \"Tags\"}}",
                     "m.yaml:22: data /category: value 'Tags' is not in table 'intervention'");
    expect_map_error(m, "{\"id\": 1}", "m.yaml:22: data /category: required value is missing (from /fields/category)");
    {   /* the record's id, read before the failing rule, is left for the rejections journal */
        json_t *bad = J("{\"id\": \"R-77\"}");
        relais_mapped_record r = { 0 };
        char err[512];
        assert_int_equal(relais_mapping_inbound_json(m, bad, &r, err, sizeof err), -1);
        assert_string_equal(r.record_id, "R-77");
        assert_null(r.type);
        assert_null(r.data);
        relais_mapped_record_clear(&r);
        json_decref(bad);
    }
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": \"Nids de poule\"}, \"prio\": \"haute\"}",
                     "m.yaml:40: data /priority: 'haute' is not an integer");
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": \"Nids de poule\"}, \"receipt\": \"hier\"}",
                     "m.yaml:35: data /opened_at: 'hier' does not match the date format");
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": \"Nids de poule\"}, \"amount\": \"4.505\"}",
                     "data /amount_cents: '4.505' is not an amount");
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": \"Nids de poule\"}, \"tags\": [{\"a\": 1}]}",
                     "data /tags[0]: a transform needs a text or number value, got an object");
    expect_map_error(m, "{\"id\": 1, \"fields\": {\"category\": {\"x\": 1}}}", "a transform needs a text");
    relais_mapping_destroy(m);

    /* no case matches: 1, not an error of a rule */
    relais_mapping *m2 = load_ok("format: json\ninbound:\n  - when: {from: /k, in: [a, b]}\n"
                                 "    type: x.y\n    data: [{to: /a, from: /a}]\n");
    json_t *rec = J("{\"k\": \"c\"}");
    relais_mapped_record r = { 0 };
    char err[256];
    assert_int_equal(relais_mapping_inbound_json(m2, rec, &r, err, sizeof err), 1);
    assert_non_null(strstr(err, "no inbound case matches"));
    json_decref(rec);
    rec = J("{\"k\": \"b\", \"a\": 3}");
    assert_int_equal(relais_mapping_inbound_json(m2, rec, &r, err, sizeof err), 0);
    assert_json_eq(r.data, "{\"a\": 3}");       /* JSON values keep their type */
    relais_mapped_record_clear(&r);
    json_decref(rec);
    relais_mapping_destroy(m2);
}

static const char *CITYWEB_IN =
    "format: xml\n"
    "tables:\n"
    "  doc:\n"
    "    values: {CPI: copie_integrale, EXTAF: extrait_avec_filiation, EXTSF: extrait_sans_filiation}\n"
    "inbound:\n"
    "  - type: fr.relais.civil.certificate.requested.v1\n"
    "    record_id: {from: identifiant}\n"
    "    subject: {from: \"concat('certificate/', identifiant)\"}\n"
    "    data:\n"
    "      - to: /document_kind\n"
    "        from: natureDocument\n"
    "        transform: [{table: doc}]\n"
    "      - to: /copies\n"
    "        from: nbExemplaire\n"
    "        as: integer\n"
    "      - to: /version\n"
    "        from: \"@version\"\n"
    "      - to: /holder/family_name\n"
    "        from: evenement/interesse/noms/nomDeFamille\n"
    "      - to: /holder/given_names\n"
    "        from: evenement/interesse/prenoms\n"
    "      - to: /holder/birth_date\n"
    "        from: evenement/interesse/naissance/date\n"
    "      - to: /parents\n"
    "        each: evenement/interesse/pere | evenement/interesse/mere\n"
    "        data:\n"
    "          - to: /role\n"
    "            from: local-name()\n"
    "          - to: /family_name\n"
    "            from: noms/nomDeFamille\n"
    "      - to: /missing\n"
    "        from: nulle/part\n";

static char *slurp_fixture(const char *rel, size_t *len)
{
    char path[1024];
    const char *src = getenv("RELAIS_SOURCE_DIR");
    assert_non_null(src);
    snprintf(path, sizeof path, "%s/%s", src, rel);
    FILE *f = fopen(path, "rb");
    if (!f) fprintf(stderr, "cannot open %s\n", path);
    assert_non_null(f);
    static char buf[1 << 16];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_xml_inbound(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(CITYWEB_IN);
    size_t len;
    const char *xml = slurp_fixture("tests/data/fixtures/cityweb/samples/demande_acte_naissance_synthetic.xml", &len);
    relais_mapped_record r = { 0 };
    char err[512] = "";
    int rc = relais_mapping_inbound_raw(m, xml, len, "demande.xml", &r, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(r.type, "fr.relais.civil.certificate.requested.v1");
    assert_string_equal(r.record_id, "RELAIS-2024-000042");
    assert_string_equal(r.subject, "certificate/RELAIS-2024-000042");
    assert_json_eq(r.data,
        "{\"document_kind\": \"copie_integrale\", \"copies\": 1, \"version\": \"1.0\","
        " \"holder\": {\"family_name\": \"EXEMPLE\", \"given_names\": \"Camille Marie\", \"birth_date\": \"1990-06-15\"},"
        " \"parents\": [{\"role\": \"pere\", \"family_name\": \"EXEMPLE\"}, {\"role\": \"mere\", \"family_name\": \"MODELE\"}]}");
    relais_mapped_record_clear(&r);

    /* a DOCTYPE is refused by the safe parser before any mapping */
    const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE d [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
                      "<demandeEtatCivil><identifiant>&x;</identifiant></demandeEtatCivil>";
    assert_int_equal(relais_mapping_inbound_raw(m, xxe, strlen(xxe), "evil.xml", &r, err, sizeof err), -1);
    assert_non_null(strstr(err, "DOCTYPE"));
    assert_null(strstr(err, "root:"));
    relais_mapping_destroy(m);

    /* namespaces: prefixes of the mapping are registered for XPath */
    relais_mapping *m2 = load_ok("format: xml\nnamespaces:\n  p: \"urn:pay\"\n"
                                 "inbound:\n  - type: fr.relais.billing.payment.received.v1\n"
                                 "    data:\n      - to: /amount_cents\n        from: p:montant\n"
                                 "        transform: [cents]\n      - to: /ref\n        from: p:ref/@id\n");
    const char *doc = "<r xmlns=\"urn:pay\"><montant>12,30</montant><ref id=\"T-1\"/></r>";
    assert_int_equal(relais_mapping_inbound_raw(m2, doc, strlen(doc), "pay.xml", &r, err, sizeof err), 0);
    assert_json_eq(r.data, "{\"amount_cents\": 1230, \"ref\": \"T-1\"}");
    relais_mapped_record_clear(&r);
    relais_mapping_destroy(m2);
}

static void test_csv_inbound(void **state)
{
    (void)state;
    relais_mapping *m = load_ok("format: csv\ninbound:\n  - type: fr.relais.election.voter.registered.v1\n"
                                "    record_id: {from: \"N° électeur\"}\n"
                                "    data:\n      - to: /voter/family_name\n        from: Nom de famille\n"
                                "        transform: [trim, upper]\n"
                                "      - to: /registered_on\n        from: Date inscription\n"
                                "        transform: [{date: {in: \"%d/%m/%Y\", out: \"%Y-%m-%d\"}}]\n");
    json_t *row = J("{\"N° électeur\": \"E-1\", \"Nom de famille\": \" élodie \", \"Date inscription\": \"01/02/2026\"}");
    relais_mapped_record r = { 0 };
    char err[256];
    assert_int_equal(relais_mapping_inbound_json(m, row, &r, err, sizeof err), 0);
    assert_string_equal(r.record_id, "E-1");
    assert_json_eq(r.data, "{\"voter\": {\"family_name\": \"ÉLODIE\"}, \"registered_on\": \"2026-02-01\"}");
    relais_mapped_record_clear(&r);
    json_decref(row);
    /* raw text is refused for csv (the connector splits the file) */
    assert_int_equal(relais_mapping_inbound_raw(m, "a,b", 3, "x.csv", &r, err, sizeof err), -1);
    relais_mapping_destroy(m);
}

static const char *EVENT =
    "{\"specversion\": \"1.0\", \"id\": \"0190-e\", \"type\": \"fr.relais.civil.certificate.requested.v1\","
    " \"subject\": \"certificate/42\", \"time\": \"2026-03-05T10:15:00Z\","
    " \"data\": {\"document_kind\": \"copie_integrale\", \"copies\": 2, \"holder\": {\"family_name\": \"Dupont & Fils <SARL>\","
    " \"given_names\": [\"Camille\", \"Marie\"]}, \"amount_cents\": 4250, \"parents\": [{\"role\": \"pere\", \"name\": \"A\"},"
    " {\"role\": \"mere\", \"name\": \"B\"}], \"lon\": 2.3522}}";

static void test_outbound_xml(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(
        "format: xml\n"
        "namespaces:\n  ec: \"urn:example:ec\"\n  x: \"urn:example:x\"\n"
        "tables:\n  doc:\n    values: {CPI: copie_integrale, EXTAF: extrait_avec_filiation}\n"
        "outbound:\n"
        "  - match: [fr.relais.grc.**]\n    root: other\n    data: [{to: a, value: 1}]\n"
        "  - match: [fr.relais.civil.certificate.**]\n"
        "    root: ec:demande\n"
        "    data:\n"
        "      - to: \"@version\"\n        value: \"1.0\"\n"
        "      - to: ec:identifiant\n        from: /localid\n"
        "      - to: ec:nature\n        from: /data/document_kind\n        transform: [{table: doc, reverse: true}]\n"
        "      - to: ec:nb\n        from: /data/copies\n"
        "      - to: ec:titulaire/ec:nom\n        from: /data/holder/family_name\n"
        "      - to: ec:titulaire/@x:type\n        value: personne\n"
        "      - to: ec:titulaire/ec:prenoms\n        from: /data/holder/given_names\n        transform: [{join: \" \"}]\n"
        "      - to: ec:titulaire/ec:prenom\n        each: /data/holder/given_names\n"
        "        data: [{to: \"\", from: \"\"}]\n"
        "      - to: ec:filiation/ec:parent\n        each: /data/parents\n"
        "        data:\n          - to: \"@role\"\n            from: /role\n          - to: ec:nom\n            from: /name\n"
        "      - to: ec:montant\n        from: /data/amount_cents\n        transform: [from_cents]\n"
        "      - to: ec:absent\n        from: /data/nothing\n");
    json_t *ev = J(EVENT);
    relais_rendered out;
    char err[512] = "";
    int rc = relais_mapping_outbound(m, ev, "CW-77", &out, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_string_equal(out.content_type, "application/xml");
    const char *want =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<ec:demande xmlns:ec=\"urn:example:ec\" xmlns:x=\"urn:example:x\" version=\"1.0\">\n"
        "  <ec:identifiant>CW-77</ec:identifiant>\n"
        "  <ec:nature>CPI</ec:nature>\n"
        "  <ec:nb>2</ec:nb>\n"
        "  <ec:titulaire x:type=\"personne\">\n"
        "    <ec:nom>Dupont &amp; Fils &lt;SARL&gt;</ec:nom>\n"
        "    <ec:prenoms>Camille Marie</ec:prenoms>\n"
        "    <ec:prenom>Camille</ec:prenom>\n"
        "    <ec:prenom>Marie</ec:prenom>\n"
        "  </ec:titulaire>\n"
        "  <ec:filiation>\n"
        "    <ec:parent role=\"pere\">\n      <ec:nom>A</ec:nom>\n    </ec:parent>\n"
        "    <ec:parent role=\"mere\">\n      <ec:nom>B</ec:nom>\n    </ec:parent>\n"
        "  </ec:filiation>\n"
        "  <ec:montant>42.50</ec:montant>\n"
        "</ec:demande>\n";
    if (strcmp(out.body, want)) fprintf(stderr, "got:\n%s\nwant:\n%s", out.body, want);
    assert_string_equal(out.body, want);
    assert_int_equal(out.len, strlen(want));
    relais_rendered_clear(&out);

    /* no case for this type */
    json_object_set_new(ev, "type", json_string("fr.relais.billing.invoice.issued.v1"));
    assert_int_equal(relais_mapping_outbound(m, ev, NULL, &out, err, sizeof err), 1);
    assert_non_null(strstr(err, "no outbound case matches event type fr.relais.billing.invoice.issued.v1"));
    /* a code the reverse table does not know: file, line, field */
    json_object_set_new(ev, "type", json_string("fr.relais.civil.certificate.requested.v1"));
    json_object_set_new(json_object_get(ev, "data"), "document_kind", json_string("extrait_plurilingue"));
    assert_int_equal(relais_mapping_outbound(m, ev, NULL, &out, err, sizeof err), -1);
    assert_non_null(strstr(err, "m.yaml:19: data ec:nature: value 'extrait_plurilingue' is not in table 'doc' (reverse)"));
    json_decref(ev);
    relais_mapping_destroy(m);
}

static void test_outbound_json_csv(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(
        "format: json\noutbound:\n  - when: {from: /data/copies, exists: true}\n    data:\n"
        "      - to: /service_request_id\n        from: /localid\n"
        "      - to: /request/kind\n        from: /data/document_kind\n        transform: [upper]\n"
        "      - to: /request/count\n        from: /data/copies\n        as: string\n"
        "      - to: /names\n        each: /data/parents\n        data: [{to: \"\", from: /name}]\n"
        "      - to: /event\n        from: /id\n"
        "      - to: /lon\n        from: /data/lon\n");
    json_t *ev = J(EVENT);
    relais_rendered out;
    char err[512] = "";
    assert_int_equal(relais_mapping_outbound(m, ev, NULL, &out, err, sizeof err), 0);
    assert_string_equal(out.content_type, "application/json");
    json_t *got = J(out.body);
    assert_json_eq(got, "{\"request\": {\"kind\": \"COPIE_INTEGRALE\", \"count\": \"2\"}, \"names\": [\"A\", \"B\"],"
                        " \"event\": \"0190-e\", \"lon\": 2.3522}");
    assert_non_null(strstr(out.body, "\"lon\":2.3522}"));     /* not 2.3521999999999998 */
    json_decref(got);
    relais_rendered_clear(&out);
    relais_mapping_destroy(m);

    relais_mapping *c = load_ok(
        "format: csv\noutbound:\n  - content_type: text/csv; charset=utf-8\n    data:\n"
        "      - to: Nom\n        from: /data/holder/family_name\n"
        "      - to: Nombre\n        from: /data/copies\n"
        "      - to: Vide\n        from: /data/none\n"
        "      - to: Lon\n        from: /data/lon\n");
    assert_int_equal(relais_mapping_outbound(c, ev, NULL, &out, err, sizeof err), 0);
    assert_string_equal(out.content_type, "text/csv; charset=utf-8");
    assert_string_equal(out.body, "Nom,Nombre,Vide,Lon\nDupont & Fils <SARL>,2,,2.3522\n");
    relais_rendered_clear(&out);
    json_object_set_new(json_object_get(json_object_get(ev, "data"), "holder"), "family_name",
                        json_string("Martin, \"dit\" Le Grand"));
    assert_int_equal(relais_mapping_outbound(c, ev, NULL, &out, err, sizeof err), 0);
    assert_string_equal(out.body, "Nom,Nombre,Vide,Lon\n\"Martin, \"\"dit\"\" Le Grand\",2,,2.3522\n");
    relais_rendered_clear(&out);
    relais_mapping_destroy(c);
    json_decref(ev);
}

static void test_load_errors(void **state)
{
    (void)state;
    load_fails("format: yaml\ninbound: []\n", "format: 'yaml' is not one of json, xml, csv", 1);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: /x\n        frm: /y\n",
               "unknown key 'frm'", 6);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: x\n        from: /y\n",
               "to: 'x' is not a JSON pointer (write '/x')", 5);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: /x\n        from: y\n",
               "from: 'y' is not a JSON pointer", 6);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: /x\n        from: /y\n"
               "        transform: [trm]\n", "unknown transform 'trm'", 7);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: /x\n        from: /y\n"
               "        transform: [{table: nope}]\n", "no table named 'nope'", 7);
    load_fails("format: json\ntables:\n  t:\n    values: {a: X, b: X}\noutbound:\n  - data:\n"
               "      - to: /x\n        from: /y\n        transform: [{table: t, reverse: true}]\n",
               "table 't' cannot be used in reverse: code 'X' comes from two vendor codes", 9);
    load_fails("format: json\ninbound:\n  - data: [{to: /a, from: /a}]\n", "'type' is required", 3);
    load_fails("format: json\ninbound:\n  - type: \"Not A Type\"\n    data: [{to: /a, from: /a}]\n",
               "is not a valid event type", 3);
    load_fails("format: xml\ninbound:\n  - type: a.b\n    data:\n      - to: /a\n        from: \"q:x\"\n",
               "XPath 'q:x' fails", 6);
    load_fails("format: xml\ninbound:\n  - type: a.b\n    data:\n      - to: /a\n        from: \"x[\"\n",
               "XPath 'x[' does not compile", 6);
    load_fails("format: xml\noutbound:\n  - root: q:doc\n    data: [{to: a, value: 1}]\n",
               "prefix 'q' is not declared", 3);
    load_fails("format: xml\noutbound:\n  - root: doc\n    data:\n      - to: \"@a/b\"\n        value: 1\n",
               "an attribute (@name) can only be the last step", 5);
    load_fails("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: /a\n        from: /a\n        value: 2\n",
               "give exactly one of from, template, value, each", 5);
    load_fails("format: json\ninbound:\n  - type: a.b\n    subject: {template: \"x/{/id\"}\n    data: []\n",
               "template: '{' without its '}'", 4);
    load_fails("format: csv\noutbound:\n  - data:\n      - to: a\n        each: /x\n        data: []\n",
               "CSV output has no repeated fields", 5);
    load_fails("format: json\n", "a mapping needs inbound:, outbound: or both", 1);
    /* every error is reported, not just the first */
    relais_errlist errs;
    assert_null(load("format: json\ninbound:\n  - type: a.b\n    data:\n      - to: x\n        from: y\n"
                     "        transform: [bad]\n", &errs));
    assert_true(errs.count >= 3);
    relais_errlist_free(&errs);
}

typedef struct thr { relais_mapping *m; const char *xml; size_t len; int failures; } thr;

static void *mapper(void *arg)
{
    thr *t = arg;
    for (int i = 0; i < 200; i++) {
        relais_mapped_record r = { 0 };
        char err[256];
        if (relais_mapping_inbound_raw(t->m, t->xml, t->len, "x.xml", &r, err, sizeof err) != 0 ||
            strcmp(json_string_value(json_object_get(json_object_get(r.data, "holder"), "family_name")), "EXEMPLE"))
            t->failures++;
        relais_mapped_record_clear(&r);
    }
    return NULL;
}

/* One compiled mapping used by several threads at once. */
static void test_threads(void **state)
{
    (void)state;
    relais_mapping *m = load_ok(CITYWEB_IN);
    size_t len;
    const char *xml = slurp_fixture("tests/data/fixtures/cityweb/samples/demande_acte_naissance_synthetic.xml", &len);
    thr a = { m, xml, len, 0 }, b = { m, xml, len, 0 };
    pthread_t ta, tb;
    pthread_create(&ta, NULL, mapper, &a);
    pthread_create(&tb, NULL, mapper, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.failures + b.failures, 0);
    relais_mapping_destroy(m);
    relais_mapping_destroy(NULL);
    relais_rendered_clear(NULL);
    relais_mapped_record_clear(NULL);
}

int main(void)
{
    relais_safeparse_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_inbound),
        cmocka_unit_test(test_json_inbound_errors),
        cmocka_unit_test(test_xml_inbound),
        cmocka_unit_test(test_csv_inbound),
        cmocka_unit_test(test_outbound_xml),
        cmocka_unit_test(test_outbound_json_csv),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
