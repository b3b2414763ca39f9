/* Runtime tests: the `file` connector (connectors/file/) driven through a
 * stand-alone instance (relais_instance_new) whose ops record what the
 * connector submits and rejects, with options parsed from YAML by the real
 * option table. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testsupport.h"
#include "instance.h"
#include "options.h"
#include "event_int.h"
#include "../../connectors/file/file_csv.h"

extern const relais_connector relais_connector_file;

/* ---- recording ops (test-only globals) ---------------------------------- */

typedef struct sub_rec {
    char *record_id, *type, *subject, *correlation, *data;
} sub_rec;

typedef struct rej_rec {
    char *record_id, *where, *reason, *raw;
} rej_rec;

static struct {
    sub_rec subs[256];
    size_t  nsubs;
    rej_rec rejs[64];
    size_t  nrejs;
    size_t  submit_calls;
    int     accepting;
    long    ok_calls;       /* submit calls answered before UNAVAILABLE; -1 = always */
    int     reject_fails;   /* relais_reject answers -1 (journal down) */
    char   *seen[256];      /* record ids accepted so far (the hub's dedupe) */
    size_t  nseen;
} g;

static char *dup0(const char *s) { return s ? strdup(s) : NULL; }

static void g_reset(void)
{
    for (size_t i = 0; i < g.nsubs; i++) {
        free(g.subs[i].record_id);
        free(g.subs[i].type);
        free(g.subs[i].subject);
        free(g.subs[i].correlation);
        free(g.subs[i].data);
    }
    for (size_t i = 0; i < g.nrejs; i++) {
        free(g.rejs[i].record_id);
        free(g.rejs[i].where);
        free(g.rejs[i].reason);
        free(g.rejs[i].raw);
    }
    for (size_t i = 0; i < g.nseen; i++)
        free(g.seen[i]);
    memset(&g, 0, sizeof g);
    g.accepting = 1;
    g.ok_calls = -1;
}

static int t_submit(void *hub, relais_instance *inst, const relais_record *recs, size_t n,
                    relais_submit_result *res)
{
    (void)hub;
    (void)inst;
    g.submit_calls++;
    if (g.ok_calls == 0) {
        for (size_t i = 0; i < n; i++)
            res[i].status = RELAIS_SUBMIT_UNAVAILABLE;
        return -1;
    }
    if (g.ok_calls > 0)
        g.ok_calls--;
    for (size_t i = 0; i < n; i++) {
        assert_true(g.nsubs < 256);
        sub_rec *s = &g.subs[g.nsubs++];
        s->record_id = dup0(recs[i].record_id);
        s->type = dup0(recs[i].type);
        s->subject = dup0(recs[i].subject);
        s->correlation = dup0(recs[i].correlation_id);
        s->data = json_dumps(recs[i].data, JSON_COMPACT | JSON_SORT_KEYS);
        res[i].status = RELAIS_SUBMIT_ACCEPTED;
        for (size_t k = 0; k < g.nseen; k++)
            if (strcmp(g.seen[k], recs[i].record_id) == 0)
                res[i].status = RELAIS_SUBMIT_DUPLICATE;
        if (res[i].status == RELAIS_SUBMIT_ACCEPTED)
            g.seen[g.nseen++] = strdup(recs[i].record_id);
    }
    return 0;
}

static int t_reject(void *hub, relais_instance *inst, const char *record_id, const char *where,
                    const char *reason, const char *raw, size_t rawlen)
{
    (void)hub;
    (void)inst;
    if (g.reject_fails)
        return -1;
    assert_true(g.nrejs < 64);
    rej_rec *r = &g.rejs[g.nrejs++];
    r->record_id = dup0(record_id);
    r->where = dup0(where);
    r->reason = dup0(reason);
    r->raw = raw ? strndup(raw, rawlen) : NULL;
    return 0;
}

static int t_accepting(void *hub, const relais_instance *inst)
{
    (void)hub;
    (void)inst;
    return g.accepting;
}

static const relais_instance_ops g_ops = { t_submit, t_reject, t_accepting };

/* ---- fixtures ------------------------------------------------------------ */

typedef struct conn {
    relais_instance *inst;
    void            *cfg;
    void            *ctx;
} conn;

/* Options from YAML through the real option table, then init + start.
 * Returns -1 (message in err) when the connector refuses the options. */
static int conn_open(conn *c, unsigned mode, const char *yaml, char *err, size_t errlen)
{
    const relais_connector *d = &relais_connector_file;
    memset(c, 0, sizeof *c);
    yt_node *map = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, errlen);
    assert_non_null(map);
    c->cfg = calloc(1, d->config_size);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int rc = relais_options_apply(d->options, c->cfg, mode, map, NULL, "test.yaml", &errs);
    if (rc != 0)
        snprintf(err, errlen, "%s", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    yt_free(map);
    if (rc != 0)
        return -1;
    c->inst = relais_instance_new("drop", "ville", mode, d, c->cfg, &g_ops, NULL, NULL);
    if (d->init(c->inst, c->cfg, &c->ctx, err, errlen) != 0)
        return -1;
    c->inst->ctx = c->ctx;
    return d->start(c->ctx, err, errlen);
}

static void conn_close(conn *c)
{
    const relais_connector *d = &relais_connector_file;
    if (c->ctx)
        d->stop(c->ctx);
    d->destroy(c->ctx);
    relais_instance_destroy(c->inst);
    relais_options_free(d->options, c->cfg);
    free(c->cfg);
}

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    g_reset();
    snprintf(g_dir, sizeof g_dir, "/tmp/relais-filetest-XXXXXX");
    assert_non_null(mkdtemp(g_dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    assert_int_equal(system(cmd), 0);
    g_reset();
    return 0;
}

static const char *in_dir(const char *rel)
{
    static char buf[4][512];
    static int slot;
    slot = (slot + 1) % 4;
    snprintf(buf[slot], sizeof buf[slot], "%s/%s", g_dir, rel);
    return buf[slot];
}

/* Write `text` as rel through a temporary name and rename, as producers must. */
static void drop(const char *rel, const char *text)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s/.incoming.tmp", g_dir);
    FILE *f = fopen(tmp, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    assert_int_equal(rename(tmp, in_dir(rel)), 0);
}

static void write_raw(const char *rel, const char *text)
{
    FILE *f = fopen(in_dir(rel), "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *de = readdir(d); de; de = readdir(d))
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            n++;
    closedir(d);
    return n;
}

static const sub_rec *sub_by_id(const char *rid)
{
    for (size_t i = 0; i < g.nsubs; i++)
        if (strcmp(g.subs[i].record_id, rid) == 0)
            return &g.subs[i];
    return NULL;
}

static void receive(conn *c)
{
    assert_int_equal(relais_connector_file.receive(c->ctx), 0);
}

/* ---- source -------------------------------------------------------------- */

static void test_jsonl_good_and_bad_lines(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml,
             "dir: %s\nevent_type: fr.relais.grc.request.created\n"
             "record_id_field: /id\nsubject_field: /who/name\ncorrelation_field: /case\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("a.jsonl", "{\"id\":\"r1\",\"who\":{\"name\":\"Ana\"},\"case\":\"k-1\"}\n"
                    "{\"id\":\"r2\",\"n\":2}\r\n"
                    "not json\n"
                    "\n"
                    "{\"id\":3,\"n\":3}");
    receive(&c);
    assert_int_equal(g.nsubs, 3);
    const sub_rec *s = sub_by_id("r1");
    assert_non_null(s);
    assert_string_equal(s->type, "fr.relais.grc.request.created");
    assert_string_equal(s->subject, "Ana");
    assert_string_equal(s->correlation, "k-1");
    assert_non_null(sub_by_id("r2"));
    assert_null(sub_by_id("r2")->subject);
    s = sub_by_id("3");      /* a number as record id, in its JSON form */
    assert_non_null(s);
    assert_string_equal(s->data, "{\"id\":3,\"n\":3}");
    assert_int_equal(g.nrejs, 1);
    assert_string_equal(g.rejs[0].where, "a.jsonl:3");
    assert_string_equal(g.rejs[0].record_id, "a.jsonl:3");
    assert_non_null(strstr(g.rejs[0].reason, "invalid JSON"));
    assert_string_equal(g.rejs[0].raw, "not json");
    /* Every record has a verdict: archived. */
    assert_false(exists(in_dir("a.jsonl")));
    assert_true(exists(in_dir("archive/a.jsonl")));
    conn_close(&c);
}

static void test_jsonl_default_ids_limits_and_redrop(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.test.thing.created\nmax_line: 40\n"
                                "subject_field: /obj\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    const char *text = "{\"a\":1}\n"
                       "{\"long\":\"0123456789012345678901234567890123456789\"}\n"
                       "[1,2]\n"
                       "{\"a\":1,\"a\":2}\n"
                       "{\"obj\":{\"x\":1}}\n"
                       "{\"b\":2}\n";
    drop("d.jsonl", text);
    receive(&c);
    assert_int_equal(g.nsubs, 2);
    assert_non_null(sub_by_id("d.jsonl:1"));
    assert_non_null(sub_by_id("d.jsonl:6"));
    assert_int_equal(g.nrejs, 4);
    assert_string_equal(g.rejs[0].where, "d.jsonl:2");
    assert_non_null(strstr(g.rejs[0].reason, "longer than max_line"));
    assert_int_equal(strlen(g.rejs[0].raw), 40);          /* the excerpt kept */
    assert_string_equal(g.rejs[1].reason, "not a JSON object");
    assert_non_null(strstr(g.rejs[2].reason, "invalid JSON"));   /* duplicate key */
    assert_non_null(strstr(g.rejs[3].reason, "subject_field /obj is an object"));
    assert_true(exists(in_dir("archive/d.jsonl")));

    /* The same file dropped again: same record ids (the hub dedupes them),
     * archived next to the first copy, not over it. */
    drop("d.jsonl", text);
    receive(&c);
    assert_int_equal(g.nsubs, 4);
    assert_string_equal(g.subs[2].record_id, "d.jsonl:1");
    assert_string_equal(g.subs[3].record_id, "d.jsonl:6");
    assert_true(exists(in_dir("archive/d.jsonl")));
    assert_true(exists(in_dir("archive/d.jsonl.1")));
    conn_close(&c);
}

static void test_csv_file(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\npattern: \"*.csv\"\nevent_type: fr.relais.grc.request.created\n"
                                "subject_field: name\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("b.csv", "\xEF\xBB\xBFname,city\r\n"
                  "Ana,Lyon\r\n"
                  "Bob\r\n"
                  "\"Multi\nline\",Paris\r\n"
                  "Eve,\"Nice, \"\"06\"\"\"\r\n"
                  ",Brest\r\n");
    receive(&c);
    assert_int_equal(g.nsubs, 4);
    const sub_rec *s = sub_by_id("b.csv:2");
    assert_non_null(s);
    assert_string_equal(s->data, "{\"city\":\"Lyon\",\"name\":\"Ana\"}");
    assert_string_equal(s->subject, "Ana");
    s = sub_by_id("b.csv:4");      /* starts on line 4, ends on line 5 */
    assert_non_null(s);
    assert_string_equal(s->data, "{\"city\":\"Paris\",\"name\":\"Multi\\nline\"}");
    s = sub_by_id("b.csv:6");
    assert_non_null(s);
    assert_string_equal(s->data, "{\"city\":\"Nice, \\\"06\\\"\",\"name\":\"Eve\"}");
    s = sub_by_id("b.csv:7");
    assert_non_null(s);
    assert_null(s->subject);       /* empty cell: no subject */
    assert_int_equal(g.nrejs, 1);
    assert_string_equal(g.rejs[0].where, "b.csv:3");
    assert_string_equal(g.rejs[0].reason, "expected 2 columns, found 1");
    assert_string_equal(g.rejs[0].raw, "Bob");
    assert_true(exists(in_dir("archive/b.csv")));
    assert_false(exists(in_dir("b.csv")));
    conn_close(&c);
}

static void test_csv_semicolon_and_record_id_column(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\npattern: \"export-*.txt\"\ncsv_delimiter: \";\"\n"
                                "event_type: fr.relais.x.y.z\nrecord_id_field: num\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("export-1.txt", "num;label\n10;a,b\n11;\"x;y\n");
    drop("other.csv", "num;label\n12;c\n");
    receive(&c);
    assert_int_equal(g.nsubs, 1);
    assert_string_equal(sub_by_id("10")->data, "{\"label\":\"a,b\",\"num\":\"10\"}");
    assert_int_equal(g.nrejs, 1);
    assert_string_equal(g.rejs[0].where, "export-1.txt:3");
    assert_non_null(strstr(g.rejs[0].reason, "unbalanced quote"));
    assert_true(exists(in_dir("other.csv")));      /* not matching the pattern */
    conn_close(&c);
}

static void test_csv_bad_header_goes_to_error_dir(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\npattern: \"*.csv\"\nevent_type: fr.relais.x.y.z\n"
                                "error_dir: %s/bad\n", g_dir, g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("c.csv", "id,name,id\n1,a,2\n");
    receive(&c);
    assert_int_equal(g.nsubs, 0);
    assert_int_equal(g.nrejs, 1);
    assert_string_equal(g.rejs[0].where, "c.csv:1");
    assert_non_null(strstr(g.rejs[0].reason, "appears twice"));
    assert_true(exists(in_dir("bad/c.csv")));
    assert_false(exists(in_dir("c.csv")));
    conn_close(&c);

    /* A configured column absent from the header: the file as a whole. */
    g_reset();
    /* format csv alone: the pattern defaults to *.csv */
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\nevent_type: fr.relais.x.y.z\n"
                                "record_id_field: ref\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("e.csv", "id,name\n1,a\n");
    receive(&c);
    assert_int_equal(g.nsubs, 0);
    assert_int_equal(g.nrejs, 1);
    assert_non_null(strstr(g.rejs[0].reason, "record_id_field: column 'ref' is not in the header"));
    assert_true(exists(in_dir("rejected/e.csv")));
    conn_close(&c);
}

static void test_incomplete_names_ignored(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    const char *names[] = { ".x.tmp", ".hidden.jsonl", "y.jsonl.tmp", "z.jsonl.part", "w.tmp", "v.txt" };
    for (size_t i = 0; i < 6; i++)
        write_raw(names[i], "{\"a\":1}\n");
    assert_int_equal(mkdir(in_dir("sub.jsonl"), 0755), 0);    /* a folder, not a file */
    receive(&c);
    assert_int_equal(g.nsubs, 0);
    assert_int_equal(g.nrejs, 0);
    for (size_t i = 0; i < 6; i++)
        assert_true(exists(in_dir(names[i])));
    assert_true(exists(in_dir("sub.jsonl")));
    conn_close(&c);
}

static void test_unavailable_leaves_file_and_resubmits_all(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\nbatch: 2\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("u.jsonl", "{\"n\":1}\n{\"n\":2}\nbad\n{\"n\":4}\n{\"n\":5}\n");
    /* First batch journaled, then the hub goes away. */
    g.ok_calls = 1;
    receive(&c);
    assert_int_equal(g.submit_calls, 2);
    assert_int_equal(g.nsubs, 2);
    assert_true(exists(in_dir("u.jsonl")));
    assert_false(exists(in_dir("archive/u.jsonl")));
    /* Back: the whole file again, from its first line. */
    g.ok_calls = -1;
    receive(&c);
    assert_int_equal(g.nsubs, 2 + 4);
    const char *want[] = { "u.jsonl:1", "u.jsonl:2", "u.jsonl:4", "u.jsonl:5" };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(g.subs[2 + i].record_id, want[i]);
    assert_int_equal(g.nseen, 4);          /* the first two came back as duplicates */
    assert_true(exists(in_dir("archive/u.jsonl")));
    assert_false(exists(in_dir("u.jsonl")));

    /* A reject that cannot be journaled stops the file as well. */
    g_reset();
    drop("v.jsonl", "bad\n{\"n\":1}\n");
    g.reject_fails = 1;
    receive(&c);
    assert_int_equal(g.nrejs, 0);
    assert_int_equal(g.submit_calls, 0);
    assert_true(exists(in_dir("v.jsonl")));
    g.reject_fails = 0;
    receive(&c);
    assert_int_equal(g.nrejs, 1);
    assert_int_equal(g.nsubs, 1);
    assert_true(exists(in_dir("archive/v.jsonl")));
    conn_close(&c);
}

static void test_not_accepting_reads_nothing(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("p.jsonl", "{\"n\":1}\nbad\n");
    g.accepting = 0;
    receive(&c);
    assert_int_equal(g.submit_calls, 0);
    assert_int_equal(g.nrejs, 0);
    assert_true(exists(in_dir("p.jsonl")));
    g.accepting = 1;
    receive(&c);
    assert_int_equal(g.nsubs, 1);
    assert_int_equal(g.nrejs, 1);
    assert_true(exists(in_dir("archive/p.jsonl")));
    conn_close(&c);
}

static void test_source_option_errors(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    conn c;
    snprintf(yaml, sizeof yaml, "dir: %s\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "event_type"));
    relais_options_free(relais_connector_file.options, c.cfg);
    free(c.cfg);

    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: a.b\ncsv_delimiter: \";;\"\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "csv_delimiter"));
    conn_close(&c);

    snprintf(yaml, sizeof yaml, "dir: %s\nformat: xml\nevent_type: a.b\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "format"));
    relais_options_free(relais_connector_file.options, c.cfg);
    free(c.cfg);
}

/* ---- sink ------------------------------------------------------------------ */

static relais_event *make_event(const char *data_json)
{
    json_error_t je;
    json_t *d = json_loads(data_json, 0, &je);
    assert_non_null(d);
    relais_record r = { .type = "fr.relais.grc.request.created", .subject = "request/1",
                        .record_id = "r-1", .data = d };
    char err[256];
    relais_event *ev = relais_event_build(&r, "desk", "ville", err, sizeof err);
    json_decref(d);
    assert_non_null(ev);
    return ev;
}

static void test_sink_jsonl_atomic_and_once(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s/out\n", g_dir);    /* created on demand */
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = make_event("{\"category\":\"voirie\"}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_OK);
    char name[200];
    snprintf(name, sizeof name, "%s.jsonl", relais_event_id(ev));
    assert_string_equal(ans.local_id, name);
    char path[700];
    snprintf(path, sizeof path, "%s/out/%s", g_dir, name);
    char *text = slurp(path);
    assert_int_equal(text[strlen(text) - 1], '\n');
    json_error_t je;
    json_t *back = json_loads(text, 0, &je);
    assert_non_null(back);
    assert_string_equal(json_string_value(json_object_get(back, "id")), relais_event_id(ev));
    assert_string_equal(json_string_value(json_object_get(json_object_get(back, "data"), "category")),
                        "voirie");
    json_decref(back);
    assert_int_equal(count_entries(in_dir("out")), 1);   /* no .tmp left */

    /* The same event again: the same file, still one. */
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(count_entries(in_dir("out")), 1);
    relais_event *ev2 = make_event("{\"category\":\"eclairage\"}");
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev2, NULL, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(count_entries(in_dir("out")), 2);
    relais_event_unref(ev);
    relais_event_unref(ev2);
    conn_close(&c);
}

static void test_sink_csv_columns(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\n"
                                "columns: [id, type, data.category, data.note, data.n, data.missing, data.tags]\n",
             g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = make_event("{\"category\":\"voirie\",\"note\":\"a, \\\"b\\\"\\nc\",\"n\":42,"
                                  "\"tags\":[\"x\",\"y\"]}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_OK);
    char path[700], want[1024];
    snprintf(path, sizeof path, "%s/%s.csv", g_dir, relais_event_id(ev));
    snprintf(want, sizeof want,
             "id,type,data.category,data.note,data.n,data.missing,data.tags\r\n"
             "%s,fr.relais.grc.request.created,voirie,\"a, \"\"b\"\"\nc\",42,,\"[\"\"x\"\",\"\"y\"\"]\"\r\n",
             relais_event_id(ev));
    assert_string_equal(slurp(path), want);
    /* What the sink writes, the source reads back. */
    file_csv_reader *r = file_csv_reader_new_mem(want, strlen(want), ',', 4096);
    file_csv_row row;
    char e[200];
    assert_int_equal(file_csv_next(r, &row, e, sizeof e), FILE_CSV_ROW);
    assert_int_equal(file_csv_next(r, &row, e, sizeof e), FILE_CSV_ROW);
    assert_int_equal(row.nfields, 7);
    assert_string_equal(row.fields[3], "a, \"b\"\nc");
    file_csv_reader_destroy(r);
    relais_event_unref(ev);
    conn_close(&c);

    /* columns are required with csv. */
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "columns"));
    conn_close(&c);
}

static void test_sink_io_error_is_retry(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    /* A path under a regular file: ENOTDIR, even for root. */
    write_raw("plain", "x");
    snprintf(yaml, sizeof yaml, "dir: %s/plain/out\n", g_dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = make_event("{}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "Not a directory"));
    assert_non_null(strstr(ans.detail, "/plain/out/."));
    assert_string_equal(ans.local_id, "");
    relais_event_unref(ev);
    conn_close(&c);
}

/* A folder whose final file name would be 4096 bytes (one more than a path
 * may have) while the temporary name still fits: the sink must not shorten
 * the name (it used to write "<id>.json" and answer OK); rename fails with
 * ENAMETOOLONG, a RETRY whose detail quotes the end of the path, cut on a
 * UTF-8 character boundary. */
static void test_sink_long_path_is_retry_not_truncated(void **state)
{
    (void)state;
    relais_event *ev = make_event("{}");
    size_t idlen = strlen(relais_event_id(ev));
    /* final = dir + "/" + id + ".jsonl" must be 4096 bytes: */
    size_t want = 4096 - 1 - idlen - strlen(".jsonl");
    static char dir[4200];
    size_t n = (size_t)snprintf(dir, sizeof dir, "%s", g_dir);
    /* the last two components: 127 "é" (254 bytes), then 127 "é" + "x", so
     * that the quoted last 300 bytes of the path start inside an "é" */
    size_t tail = 1 + 254 + 1 + 255;
    assert_true(n + tail < want);
    size_t rem = want - n - tail;
    while (rem > 0) {
        size_t k = rem - 1 > 200 ? 200 : rem - 1;
        if (rem - 1 - k == 1)
            k--;
        dir[n++] = '/';
        memset(dir + n, 'd', k);
        n += k;
        rem -= k + 1;
    }
    for (int part = 0; part < 2; part++) {
        dir[n++] = '/';
        for (int i = 0; i < 127; i++) {
            memcpy(dir + n, "\xc3\xa9", 2);
            n += 2;
        }
        if (part == 1)
            dir[n++] = 'x';
    }
    dir[n] = '\0';
    assert_int_equal(n, want);
    /* the byte where the last 300 bytes of the final path begin is inside an "é" */
    assert_int_equal((unsigned char)dir[n - (300 - 1 - idlen - strlen(".jsonl"))] & 0xC0, 0x80);

    static char yaml[4400];
    char err[512];
    snprintf(yaml, sizeof yaml, "dir: \"%s\"\n", dir);
    conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_RETRY);
    assert_string_equal(ans.local_id, "");
    assert_non_null(strstr(ans.detail, "rename ..."));
    char end[200];
    snprintf(end, sizeof end, "x/%s.jsonl: %s", relais_event_id(ev), strerror(ENAMETOOLONG));
    assert_non_null(strstr(ans.detail, end));
    json_t *valid = json_string(ans.detail);   /* jansson refuses invalid UTF-8 */
    assert_non_null(valid);
    json_decref(valid);
    assert_int_equal(count_entries(dir), 0);   /* the temporary file is gone */
    relais_event_unref(ev);
    conn_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_jsonl_good_and_bad_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_jsonl_default_ids_limits_and_redrop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_semicolon_and_record_id_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_bad_header_goes_to_error_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incomplete_names_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unavailable_leaves_file_and_resubmits_all, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_accepting_reads_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_option_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_jsonl_atomic_and_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_csv_columns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_io_error_is_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sink_long_path_is_retry_not_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
