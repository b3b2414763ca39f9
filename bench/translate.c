/*
 * translate.c - records per second per core of the translation engine, next
 * to bare libxml2, bare jansson and libxslt on the same documents, in the
 * same process and the same run (docs/PERFORMANCE.md, "Translation").
 *
 *   relais-bench-translate [--dir DIR] [--seconds S] [--schemas DIR] [--emit DIR] [--run N]
 *                          [--only PATH]
 *
 * DIR (default bench/translate of the source tree) holds demande.xml,
 * cityweb.yaml, cityweb.xsl, wcs_form.json and wcs.yaml. Paths measured,
 * each one record at a time, single-threaded (so "per core"):
 *   xml_parse        xmlReadMemory + xmlFreeDoc                  (demande.xml)
 *   xml_parse_dump   xmlReadMemory + xmlDocDumpMemory + frees    (demande.xml)
 *   xml_safe_parse   relais_xml_parse + xmlFreeDoc               (demande.xml)
 *   translate_a      relais_xml_parse, relais_mapping_inbound_xml (cityweb.yaml),
 *                    relais_event_build_take (the event object, as the hub wraps
 *                    it), relais_mapping_outbound to a demandeEtatCivil
 *                    document (serialised), frees
 *   xslt_a           xmlReadMemory, xsltApplyStylesheet (cityweb.xsl),
 *                    xsltSaveResultToString, frees (only when built with libxslt)
 *   json_load_dump   json_loadb + json_dumps + frees             (wcs_form.json)
 *   json_safe_parse  relais_json_parse + json_decref             (wcs_form.json)
 *   translate_b      relais_json_parse, relais_mapping_inbound_json (wcs.yaml),
 *                    relais_event_build_take, relais_mapping_outbound to an Open311
 *                    service request (JSON text), frees
 * Each path runs a warm-up, then batches of 64 records until S seconds
 * (default 1) of this thread's CPU time have passed; the rate is records per
 * CPU second (wall seconds are reported too). Then the stages of
 * translate_a and translate_b are timed one by one (thread CPU clock around
 * each stage over 20,000 records), with the JSON Schema validation the hub
 * does before routing as an extra stage that is not part of the paths.
 *
 * Before measuring, the program checks that both mappings give schema-valid
 * canonical data (when --schemas DIR, default the tree's schemas/, exists)
 * and exits 1 otherwise. --emit DIR writes the canonical events and vendor
 * outputs (a.event.json, a.out.xml, a.xslt.xml, b.event.json, b.out.json)
 * so that bench/translate.sh can compare translate_a with xsltproc.
 *
 * --only PATH measures that path alone and prints nothing on stdout (for
 * perf record or valgrind --tool=callgrind).
 *
 * Prints one JSON line: {"run":N,"rates":{path:{"records","cpu_s","wall_s",
 * "rate"}},"stages_a":{stage:us},"stages_b":{...},"bytes":{...}}.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <jansson.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#ifdef RELAIS_BENCH_XSLT
#include <libxslt/xslt.h>
#include <libxslt/xsltInternals.h>
#include <libxslt/transform.h>
#include <libxslt/xsltutils.h>
#endif
#include "relais/relais.h"
#include "relais/event.h"
#include "event_int.h"
#include "mapping.h"
#include "safeparse.h"
#include "jsonschema.h"
#include "canonical.h"
#include "errlist.h"

#ifndef RELAIS_BENCH_DIR
#define RELAIS_BENCH_DIR "bench/translate"
#endif
#ifndef RELAIS_BENCH_SCHEMAS
#define RELAIS_BENCH_SCHEMAS "schemas"
#endif

typedef struct bench {
    char   *xml;  size_t xml_len;
    char   *json; size_t json_len;
    relais_mapping *map_a, *map_b;
    relais_schema_set *schemas;       /* NULL when no schemas/ */
#ifdef RELAIS_BENCH_XSLT
    xsltStylesheetPtr xsl;
#endif
} bench;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *slurp(const char *dir, const char *name, size_t *len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "translate: %s: %s\n", path, strerror(errno)); return NULL; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "translate: %s: cannot read\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

static int spit(const char *dir, const char *name, const char *buf, size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, len, f) != len) {
        fprintf(stderr, "translate: %s: cannot write\n", path);
        if (f) fclose(f);
        return -1;
    }
    return fclose(f);
}

static relais_mapping *load_mapping(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_mapping *m = relais_mapping_load(path, &errs);
    if (!m) {
        fprintf(stderr, "translate: %s does not load:\n", path);
        relais_errlist_print(&errs, stderr);
    }
    relais_errlist_free(&errs);
    return m;
}

/* ---- one record through each path -------------------------------------------- */

static int xml_parse(bench *b)
{
    xmlDocPtr d = xmlReadMemory(b->xml, (int)b->xml_len, NULL, NULL, XML_PARSE_NONET);
    if (!d) return -1;
    xmlFreeDoc(d);
    return 0;
}

static int xml_parse_dump(bench *b)
{
    xmlDocPtr d = xmlReadMemory(b->xml, (int)b->xml_len, NULL, NULL, XML_PARSE_NONET);
    if (!d) return -1;
    xmlChar *mem = NULL;
    int n = 0;
    xmlDocDumpMemory(d, &mem, &n);
    xmlFreeDoc(d);
    if (!mem) return -1;
    xmlFree(mem);
    return 0;
}

static int xml_safe_parse(bench *b)
{
    char err[256];
    xmlDocPtr d = relais_xml_parse(b->xml, b->xml_len, "demande.xml", NULL, err, sizeof err);
    if (!d) { fprintf(stderr, "translate: %s\n", err); return -1; }
    xmlFreeDoc(d);
    return 0;
}

static int json_load_dump(bench *b)
{
    json_error_t e;
    json_t *v = json_loadb(b->json, b->json_len, 0, &e);
    if (!v) return -1;
    char *s = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (!s) return -1;
    free(s);
    return 0;
}

static int json_safe_parse(bench *b)
{
    char err[256];
    json_t *v = relais_json_parse(b->json, b->json_len, "wcs_form.json", NULL, err, sizeof err);
    if (!v) { fprintf(stderr, "translate: %s\n", err); return -1; }
    json_decref(v);
    return 0;
}

/* Stage times of one record, microseconds, when st is not NULL. */
typedef struct stages { double parse, inbound, event, outbound, validate; } stages;

/* this thread's CPU time: a stage is not charged for the time the shared
 * machine gave to other processes */
static double cpu_us(void) { return clock_s(CLOCK_THREAD_CPUTIME_ID) * 1e6; }

/* The record (vendor document) -> event -> vendor document. keep: when not
 * NULL, the event and the output are handed back instead of freed. */
static int translate(bench *b, int xml, stages *st, relais_event **keep_ev, relais_rendered *keep_out)
{
    char err[512];
    double t0 = st ? cpu_us() : 0, t1 = 0;
    relais_mapped_record mr = { 0 };
    int rc;
    if (xml) {
        xmlDocPtr d = relais_xml_parse(b->xml, b->xml_len, "demande.xml", NULL, err, sizeof err);
        if (!d) { fprintf(stderr, "translate: %s\n", err); return -1; }
        if (st) t1 = cpu_us();
        rc = relais_mapping_inbound_xml(b->map_a, d, &mr, err, sizeof err);
        xmlFreeDoc(d);
    } else {
        json_t *v = relais_json_parse(b->json, b->json_len, "wcs_form.json", NULL, err, sizeof err);
        if (!v) { fprintf(stderr, "translate: %s\n", err); return -1; }
        if (st) t1 = cpu_us();
        rc = relais_mapping_inbound_json(b->map_b, v, &mr, err, sizeof err);
        json_decref(v);
    }
    if (rc != 0) { fprintf(stderr, "translate: inbound: %s\n", err); relais_mapped_record_clear(&mr); return -1; }
    double t2 = st ? cpu_us() : 0;
    relais_record rec = { .type = mr.type, .subject = mr.subject, .record_id = mr.record_id,
                          .correlation_id = mr.correlation_id, .data = mr.data };
    /* as the hub does (hub.c canonical_event): the mapped data is handed over, not copied */
    relais_event *ev = relais_event_build_take(&rec, json_incref(mr.data), xml ? "cityweb" : "wcs", "bench",
                                               err, sizeof err);
    relais_mapped_record_clear(&mr);
    if (!ev) { fprintf(stderr, "translate: event: %s\n", err); return -1; }
    double t3 = st ? cpu_us() : 0;
    relais_rendered out;
    memset(&out, 0, sizeof out);
    rc = relais_mapping_outbound(xml ? b->map_a : b->map_b, relais_event_object(ev), NULL, &out,
                                 err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "translate: outbound: %s\n", err);
        relais_event_unref(ev);
        return -1;
    }
    double t4 = st ? cpu_us() : 0;
    if (st) {
        st->parse += t1 - t0;
        st->inbound += t2 - t1;
        st->event += t3 - t2;
        st->outbound += t4 - t3;
        if (b->schemas) {
            if (relais_schema_check_event(b->schemas, 0, ev, err, sizeof err) != 0) {
                fprintf(stderr, "translate: schema: %s\n", err);
                relais_event_unref(ev);
                relais_rendered_clear(&out);
                return -1;
            }
            st->validate += cpu_us() - t4;
        }
    }
    if (keep_ev) *keep_ev = ev;
    else relais_event_unref(ev);
    if (keep_out) *keep_out = out;
    else relais_rendered_clear(&out);
    return 0;
}

static int translate_a(bench *b) { return translate(b, 1, NULL, NULL, NULL); }
static int translate_b(bench *b) { return translate(b, 0, NULL, NULL, NULL); }

#ifdef RELAIS_BENCH_XSLT
/* keep: when not NULL, the serialised result is handed back. */
static int xslt_run(bench *b, char **keep, int *keep_len)
{
    xmlDocPtr d = xmlReadMemory(b->xml, (int)b->xml_len, NULL, NULL, XML_PARSE_NONET);
    if (!d) return -1;
    xmlDocPtr r = xsltApplyStylesheet(b->xsl, d, NULL);
    xmlFreeDoc(d);
    if (!r) return -1;
    xmlChar *mem = NULL;
    int n = 0;
    int rc = xsltSaveResultToString(&mem, &n, r, b->xsl);
    xmlFreeDoc(r);
    if (rc != 0 || !mem) return -1;
    if (keep) { *keep = (char *)mem; *keep_len = n; }
    else xmlFree(mem);
    return 0;
}
static int xslt_a(bench *b) { return xslt_run(b, NULL, NULL); }
#endif

/* ---- measuring ------------------------------------------------------------------ */

typedef struct bpath {
    const char *name;
    int (*fn)(bench *);
} bpath;

static int measure(bench *b, const bpath *p, double seconds, json_t *rates)
{
    for (int i = 0; i < 200; i++)
        if (p->fn(b) != 0) { fprintf(stderr, "translate: path %s fails\n", p->name); return -1; }
    long n = 0;
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID), w0 = clock_s(CLOCK_MONOTONIC), c1;
    do {
        for (int i = 0; i < 64; i++)
            if (p->fn(b) != 0) { fprintf(stderr, "translate: path %s fails\n", p->name); return -1; }
        n += 64;
        c1 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    } while (c1 - c0 < seconds);
    double w1 = clock_s(CLOCK_MONOTONIC);
    json_object_set_new(rates, p->name, json_pack("{s:I,s:f,s:f,s:f}", "records", (json_int_t)n,
                                                  "cpu_s", c1 - c0, "wall_s", w1 - w0,
                                                  "rate", (double)n / (c1 - c0)));
    fprintf(stderr, "  %-16s %10.0f rec/s (cpu), %10.0f rec/s (wall)\n", p->name, (double)n / (c1 - c0),
            (double)n / (w1 - w0));
    return 0;
}

static json_t *measure_stages(bench *b, int xml, int n)
{
    stages st = { 0 };
    for (int i = 0; i < n; i++)
        if (translate(b, xml, &st, NULL, NULL) != 0) return NULL;
    json_t *o = json_pack("{s:f,s:f,s:f,s:f}", "parse", st.parse / n, "inbound", st.inbound / n,
                          "event", st.event / n, "outbound", st.outbound / n);
    if (b->schemas) json_object_set_new(o, "validate_not_in_path", json_real(st.validate / n));
    return o;
}

/* The canonical data must hold to its schema; --emit writes the documents. */
static int check_and_emit(bench *b, const char *emit)
{
    for (int xml = 1; xml >= 0; xml--) {
        relais_event *ev = NULL;
        relais_rendered out;
        memset(&out, 0, sizeof out);
        if (translate(b, xml, NULL, &ev, &out) != 0) return -1;
        char err[1024] = "";
        int bad = b->schemas && relais_schema_check_event(b->schemas, 1, ev, err, sizeof err) != 0;
        if (bad) fprintf(stderr, "translate: %s: the canonical data is not schema-valid: %s\n",
                         xml ? "cityweb.yaml" : "wcs.yaml", err);
        if (!bad && emit) {
            char *js = json_dumps(relais_event_object(ev), JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (!js || spit(emit, xml ? "a.event.json" : "b.event.json", js, strlen(js)) != 0 ||
                spit(emit, xml ? "a.out.xml" : "b.out.json", out.body, out.len) != 0)
                bad = 1;
            free(js);
        }
        relais_event_unref(ev);
        relais_rendered_clear(&out);
        if (bad) return -1;
    }
#ifdef RELAIS_BENCH_XSLT
    if (emit) {
        char *s = NULL;
        int n = 0;
        if (xslt_run(b, &s, &n) != 0) { fprintf(stderr, "translate: cityweb.xsl fails\n"); return -1; }
        int rc = spit(emit, "a.xslt.xml", s, (size_t)n);
        xmlFree(s);
        if (rc != 0) return -1;
    }
#endif
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: relais-bench-translate [--dir DIR] [--seconds S] [--schemas DIR] [--emit DIR] [--run N]\n"
                    "                              [--only PATH]   (one path, no stages: for perf or callgrind)\n");
}

int main(int argc, char **argv)
{
    const char *dir = RELAIS_BENCH_DIR, *schemas = RELAIS_BENCH_SCHEMAS, *emit = NULL, *only = NULL;
    double seconds = 1.0;
    int run = 1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--dir")) dir = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--seconds")) seconds = atof(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--schemas")) schemas = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--emit")) emit = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--run")) run = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--only")) only = argv[++i];
        else { usage(); return 2; }
    }
    if (seconds <= 0) { usage(); return 2; }
    relais_safeparse_init();
    bench b;
    memset(&b, 0, sizeof b);
    int rc = 1;
    b.xml = slurp(dir, "demande.xml", &b.xml_len);
    b.json = slurp(dir, "wcs_form.json", &b.json_len);
    b.map_a = load_mapping(dir, "cityweb.yaml");
    b.map_b = load_mapping(dir, "wcs.yaml");
    if (!b.xml || !b.json || !b.map_a || !b.map_b) goto out;
    struct stat sst;
    if (schemas && stat(schemas, &sst) == 0) {
        char err[512];
        b.schemas = relais_schema_set_new();
        if (relais_schema_set_load_dir(b.schemas, schemas, err, sizeof err) != 0 ||
            relais_schema_set_compile(b.schemas, err, sizeof err) != 0) {
            fprintf(stderr, "translate: schemas %s: %s\n", schemas, err);
            goto out;
        }
    }
#ifdef RELAIS_BENCH_XSLT
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/cityweb.xsl", dir);
        /* the stylesheet is ours, read directly (the deny-all entity loader
         * of safeparse would refuse a file read through xmlReadFile) */
        size_t n;
        char *s = slurp(dir, "cityweb.xsl", &n);
        xmlDocPtr sd = s ? xmlReadMemory(s, (int)n, path, NULL, XML_PARSE_NONET) : NULL;
        free(s);
        b.xsl = sd ? xsltParseStylesheetDoc(sd) : NULL;
        if (!b.xsl) { fprintf(stderr, "translate: %s does not compile\n", path); xmlFreeDoc(sd); goto out; }
    }
#endif
    if (check_and_emit(&b, emit) != 0) goto out;

    static const bpath paths[] = {
        { "xml_parse", xml_parse },
        { "xml_parse_dump", xml_parse_dump },
        { "xml_safe_parse", xml_safe_parse },
        { "translate_a", translate_a },
#ifdef RELAIS_BENCH_XSLT
        { "xslt_a", xslt_a },
#endif
        { "json_load_dump", json_load_dump },
        { "json_safe_parse", json_safe_parse },
        { "translate_b", translate_b },
    };
    json_t *res = json_pack("{s:i,s:{s:I,s:I},s:b}", "run", run, "bytes", "demande_xml", (json_int_t)b.xml_len,
                            "wcs_json", (json_int_t)b.json_len, "schema_checked", b.schemas != NULL);
    json_t *rates = json_object();
    json_object_set_new(res, "rates", rates);
    int found = 0;
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (only && strcmp(only, paths[i].name) != 0) continue;
        found = 1;
        if (measure(&b, &paths[i], seconds, rates) != 0) { json_decref(res); goto out; }
    }
    if (only) {                    /* one path, for a profiler: no stages */
        if (!found) fprintf(stderr, "translate: no path named %s\n", only);
        json_decref(res);
        rc = !found;
        goto out;
    }
    json_t *sa = measure_stages(&b, 1, 20000), *sb = sa ? measure_stages(&b, 0, 20000) : NULL;
    if (!sa || !sb) { json_decref(sa); json_decref(res); goto out; }
    json_object_set_new(res, "stages_a_us", sa);
    json_object_set_new(res, "stages_b_us", sb);
    char *line = json_dumps(res, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(res);
    if (line) { printf("%s\n", line); free(line); rc = 0; }
out:
#ifdef RELAIS_BENCH_XSLT
    if (b.xsl) xsltFreeStylesheet(b.xsl);
#endif
    relais_schema_set_destroy(b.schemas);
    relais_mapping_destroy(b.map_a);
    relais_mapping_destroy(b.map_b);
    free(b.xml);
    free(b.json);
    return rc;
}
