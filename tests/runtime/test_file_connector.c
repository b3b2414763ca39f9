/* Runtime tests: the `file` connector (connectors/file/) driven through a
 * stand-alone instance (relais_instance_new) whose hub is a ts_recorder
 * (testsupport.h) recording what the connector submits and rejects, with
 * options parsed from YAML by the real option table. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testsupport.h"
#include "options.h"
#include "event_int.h"
#include "../../connectors/file/file_csv.h"

extern const relais_connector relais_connector_file;

/* ---- the recording hub (test-only global) -------------------------------- */

static ts_recorder *g_rec;

/* ---- fixtures ------------------------------------------------------------ */

/* Instance "drop" of the file connector, options from YAML (ts_conn_open). */
static int conn_open(ts_conn *c, unsigned mode, const char *yaml, char *err, size_t errlen)
{
    return ts_conn_open(c, &relais_connector_file, "drop", mode, yaml, g_rec, NULL, err, errlen);
}

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    g_rec = ts_recorder_new();
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
    ts_recorder_free(g_rec);
    g_rec = NULL;
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

static const ts_submitted *sub_by_id(const char *rid)
{
    return ts_recorder_find(g_rec, rid);
}

static void receive(ts_conn *c)
{
    assert_int_equal(relais_connector_file.receive(c->ctx), 0);
}

/* ---- source -------------------------------------------------------------- */

/* A field option written without its leading slash is refused at start
 * (it would silently find nothing); for CSV it is a column name. */
static void test_field_options_checked_at_init(void **state)
{
    (void)state;
    char yaml[1024], err[512] = "";
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y\nsubject_field: who\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "option 'subject_field': 'who' is not a JSON pointer (write '/who')"));
    ts_conn_close(&c);
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y\nformat: csv\nsubject_field: who\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    ts_conn_close(&c);
}

static void test_jsonl_good_and_bad_lines(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml,
             "dir: %s\nevent_type: fr.relais.grc.request.created\n"
             "record_id_field: /id\nsubject_field: /who/name\ncorrelation_field: /case\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("a.jsonl", "{\"id\":\"r1\",\"who\":{\"name\":\"Ana\"},\"case\":\"k-1\"}\n"
                    "{\"id\":\"r2\",\"n\":2}\r\n"
                    "not json\n"
                    "\n"
                    "{\"id\":3,\"n\":3}");
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 3);
    const ts_submitted *s = sub_by_id("r1");
    assert_non_null(s);
    assert_string_equal(s->type, "fr.relais.grc.request.created");
    assert_string_equal(s->subject, "Ana");
    assert_string_equal(s->correlation_id, "k-1");
    assert_non_null(sub_by_id("r2"));
    assert_null(sub_by_id("r2")->subject);
    s = sub_by_id("3");      /* a number as record id, in its JSON form */
    assert_non_null(s);
    assert_string_equal(s->data, "{\"id\":3,\"n\":3}");
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_string_equal(ts_recorder_rej(g_rec, 0)->where, "a.jsonl:3");
    assert_string_equal(ts_recorder_rej(g_rec, 0)->record_id, "a.jsonl:3");
    assert_non_null(strstr(ts_recorder_rej(g_rec, 0)->reason, "invalid JSON"));
    assert_string_equal(ts_recorder_rej(g_rec, 0)->raw, "not json");
    /* Every record has a verdict: archived. */
    assert_false(exists(in_dir("a.jsonl")));
    assert_true(exists(in_dir("archive/a.jsonl")));
    ts_conn_close(&c);
}

static void test_jsonl_default_ids_limits_and_redrop(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.test.thing.created\nmax_line: 40\n"
                                "subject_field: /obj\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    const char *text = "{\"a\":1}\n"
                       "{\"long\":\"0123456789012345678901234567890123456789\"}\n"
                       "[1,2]\n"
                       "{\"a\":1,\"a\":2}\n"
                       "{\"obj\":{\"x\":1}}\n"
                       "{\"b\":2}\n";
    drop("d.jsonl", text);
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 2);
    assert_non_null(sub_by_id("d.jsonl:1"));
    assert_non_null(sub_by_id("d.jsonl:6"));
    assert_int_equal(ts_recorder_nrejs(g_rec), 4);
    assert_string_equal(ts_recorder_rej(g_rec, 0)->where, "d.jsonl:2");
    assert_non_null(strstr(ts_recorder_rej(g_rec, 0)->reason, "longer than max_line"));
    assert_int_equal(strlen(ts_recorder_rej(g_rec, 0)->raw), 40);          /* the excerpt kept */
    assert_string_equal(ts_recorder_rej(g_rec, 1)->reason, "not a JSON object");
    assert_non_null(strstr(ts_recorder_rej(g_rec, 2)->reason, "invalid JSON"));   /* duplicate key */
    assert_non_null(strstr(ts_recorder_rej(g_rec, 3)->reason, "subject_field /obj is an object"));
    assert_true(exists(in_dir("archive/d.jsonl")));

    /* The same file dropped again: same record ids (the hub dedupes them),
     * archived next to the first copy, not over it. */
    drop("d.jsonl", text);
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 4);
    assert_string_equal(ts_recorder_sub(g_rec, 2)->record_id, "d.jsonl:1");
    assert_string_equal(ts_recorder_sub(g_rec, 3)->record_id, "d.jsonl:6");
    assert_true(exists(in_dir("archive/d.jsonl")));
    assert_true(exists(in_dir("archive/d.jsonl.1")));
    ts_conn_close(&c);
}

static void test_csv_file(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\npattern: \"*.csv\"\nevent_type: fr.relais.grc.request.created\n"
                                "subject_field: name\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("b.csv", "\xEF\xBB\xBFname,city\r\n"
                  "Ana,Lyon\r\n"
                  "Bob\r\n"
                  "\"Multi\nline\",Paris\r\n"
                  "Eve,\"Nice, \"\"06\"\"\"\r\n"
                  ",Brest\r\n");
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 4);
    const ts_submitted *s = sub_by_id("b.csv:2");
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
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_string_equal(ts_recorder_rej(g_rec, 0)->where, "b.csv:3");
    assert_string_equal(ts_recorder_rej(g_rec, 0)->reason, "expected 2 columns, found 1");
    assert_string_equal(ts_recorder_rej(g_rec, 0)->raw, "Bob");
    assert_true(exists(in_dir("archive/b.csv")));
    assert_false(exists(in_dir("b.csv")));
    ts_conn_close(&c);
}

static void test_csv_semicolon_and_record_id_column(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\npattern: \"export-*.txt\"\ncsv_delimiter: \";\"\n"
                                "event_type: fr.relais.x.y.z\nrecord_id_field: num\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("export-1.txt", "num;label\n10;a,b\n11;\"x;y\n");
    drop("other.csv", "num;label\n12;c\n");
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 1);
    assert_string_equal(sub_by_id("10")->data, "{\"label\":\"a,b\",\"num\":\"10\"}");
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_string_equal(ts_recorder_rej(g_rec, 0)->where, "export-1.txt:3");
    assert_non_null(strstr(ts_recorder_rej(g_rec, 0)->reason, "unbalanced quote"));
    assert_true(exists(in_dir("other.csv")));      /* not matching the pattern */
    ts_conn_close(&c);
}

static void test_csv_bad_header_goes_to_error_dir(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\npattern: \"*.csv\"\nevent_type: fr.relais.x.y.z\n"
                                "error_dir: %s/bad\n", g_dir, g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("c.csv", "id,name,id\n1,a,2\n");
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 0);
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_string_equal(ts_recorder_rej(g_rec, 0)->where, "c.csv:1");
    assert_non_null(strstr(ts_recorder_rej(g_rec, 0)->reason, "appears twice"));
    assert_true(exists(in_dir("bad/c.csv")));
    assert_false(exists(in_dir("c.csv")));
    ts_conn_close(&c);

    /* A configured column absent from the header: the file as a whole. */
    ts_recorder_reset(g_rec);
    /* format csv alone: the pattern defaults to *.csv */
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\nevent_type: fr.relais.x.y.z\n"
                                "record_id_field: ref\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("e.csv", "id,name\n1,a\n");
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 0);
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_non_null(strstr(ts_recorder_rej(g_rec, 0)->reason, "record_id_field: column 'ref' is not in the header"));
    assert_true(exists(in_dir("rejected/e.csv")));
    ts_conn_close(&c);
}

static void test_incomplete_names_ignored(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    const char *names[] = { ".x.tmp", ".hidden.jsonl", "y.jsonl.tmp", "z.jsonl.part", "w.tmp", "v.txt" };
    for (size_t i = 0; i < 6; i++)
        write_raw(names[i], "{\"a\":1}\n");
    assert_int_equal(mkdir(in_dir("sub.jsonl"), 0755), 0);    /* a folder, not a file */
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 0);
    assert_int_equal(ts_recorder_nrejs(g_rec), 0);
    for (size_t i = 0; i < 6; i++)
        assert_true(exists(in_dir(names[i])));
    assert_true(exists(in_dir("sub.jsonl")));
    ts_conn_close(&c);
}

static void test_unavailable_leaves_file_and_resubmits_all(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\nbatch: 2\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("u.jsonl", "{\"n\":1}\n{\"n\":2}\nbad\n{\"n\":4}\n{\"n\":5}\n");
    /* First batch journaled, then the hub goes away. */
    ts_recorder_set_submit_budget(g_rec, 1);
    receive(&c);
    assert_int_equal(ts_recorder_submit_calls(g_rec), 2);
    assert_int_equal(ts_recorder_nsubs(g_rec), 2);
    assert_true(exists(in_dir("u.jsonl")));
    assert_false(exists(in_dir("archive/u.jsonl")));
    /* Back: the whole file again, from its first line. */
    ts_recorder_set_submit_budget(g_rec, -1);
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 2 + 4);
    const char *want[] = { "u.jsonl:1", "u.jsonl:2", "u.jsonl:4", "u.jsonl:5" };
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(ts_recorder_sub(g_rec, 2 + i)->record_id, want[i]);
    assert_int_equal(ts_recorder_naccepted(g_rec), 4);          /* the first two came back as duplicates */
    assert_true(exists(in_dir("archive/u.jsonl")));
    assert_false(exists(in_dir("u.jsonl")));

    /* A reject that cannot be journaled stops the file as well. */
    ts_recorder_reset(g_rec);
    drop("v.jsonl", "bad\n{\"n\":1}\n");
    ts_recorder_set_reject_fails(g_rec, 1);
    receive(&c);
    assert_int_equal(ts_recorder_nrejs(g_rec), 0);
    assert_int_equal(ts_recorder_submit_calls(g_rec), 0);
    assert_true(exists(in_dir("v.jsonl")));
    ts_recorder_set_reject_fails(g_rec, 0);
    receive(&c);
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_int_equal(ts_recorder_nsubs(g_rec), 1);
    assert_true(exists(in_dir("archive/v.jsonl")));
    ts_conn_close(&c);
}

static void test_not_accepting_reads_nothing(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: fr.relais.x.y.z\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), 0);
    drop("p.jsonl", "{\"n\":1}\nbad\n");
    ts_recorder_set_accepting(g_rec, 0);
    receive(&c);
    assert_int_equal(ts_recorder_submit_calls(g_rec), 0);
    assert_int_equal(ts_recorder_nrejs(g_rec), 0);
    assert_true(exists(in_dir("p.jsonl")));
    ts_recorder_set_accepting(g_rec, 1);
    receive(&c);
    assert_int_equal(ts_recorder_nsubs(g_rec), 1);
    assert_int_equal(ts_recorder_nrejs(g_rec), 1);
    assert_true(exists(in_dir("archive/p.jsonl")));
    ts_conn_close(&c);
}

static void test_source_option_errors(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    ts_conn c;
    snprintf(yaml, sizeof yaml, "dir: %s\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "event_type"));
    relais_options_free(relais_connector_file.options, c.cfg);
    free(c.cfg);

    snprintf(yaml, sizeof yaml, "dir: %s\nevent_type: a.b\ncsv_delimiter: \";;\"\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "csv_delimiter"));
    ts_conn_close(&c);

    snprintf(yaml, sizeof yaml, "dir: %s\nformat: yaml\nevent_type: a.b\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "format"));
    relais_options_free(relais_connector_file.options, c.cfg);
    free(c.cfg);

    /* xml files are vendor documents: only with an xml mapping (the hub's) */
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: xml\nevent_type: a.b\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SOURCE, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "format xml is for sources with an xml mapping"));
    ts_conn_close(&c);
}

/* ---- sink ------------------------------------------------------------------ */

static void test_sink_jsonl_atomic_and_once(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s/out\n", g_dir);    /* created on demand */
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = ts_event("request/1", "{\"category\":\"voirie\"}");
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
    relais_event *ev2 = ts_event("request/1", "{\"category\":\"eclairage\"}");
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev2, NULL, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(count_entries(in_dir("out")), 2);
    relais_event_unref(ev);
    relais_event_unref(ev2);
    ts_conn_close(&c);
}

static void test_sink_csv_columns(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\n"
                                "columns: [id, type, data.category, data.note, data.n, data.missing, data.tags]\n",
             g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = ts_event("request/1",
                                "{\"category\":\"voirie\",\"note\":\"a, \\\"b\\\"\\nc\",\"n\":42,"
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
    ts_conn_close(&c);

    /* columns are required with csv. */
    snprintf(yaml, sizeof yaml, "dir: %s\nformat: csv\n", g_dir);
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), -1);
    assert_non_null(strstr(err, "columns"));
    ts_conn_close(&c);
}

static void test_sink_io_error_is_retry(void **state)
{
    (void)state;
    char yaml[1024], err[512];
    /* A path under a regular file: ENOTDIR, even for root. */
    write_raw("plain", "x");
    snprintf(yaml, sizeof yaml, "dir: %s/plain/out\n", g_dir);
    ts_conn c;
    assert_int_equal(conn_open(&c, RELAIS_MODE_SINK, yaml, err, sizeof err), 0);
    relais_event *ev = ts_event("request/1", "{}");
    relais_answer ans;
    memset(&ans, 0, sizeof ans);
    assert_int_equal(relais_connector_file.deliver(c.ctx, ev, NULL, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "Not a directory"));
    assert_non_null(strstr(ans.detail, "/plain/out/."));
    assert_string_equal(ans.local_id, "");
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* A folder whose final file name would be 4096 bytes (one more than a path
 * may have) while the temporary name still fits: the sink must not shorten
 * the name (it used to write "<id>.json" and answer OK); rename fails with
 * ENAMETOOLONG, a RETRY whose detail quotes the end of the path, cut on a
 * UTF-8 character boundary. */
static void test_sink_long_path_is_retry_not_truncated(void **state)
{
    (void)state;
    relais_event *ev = ts_event("request/1", "{}");
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
    ts_conn c;
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
    ts_conn_close(&c);
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
        cmocka_unit_test_setup_teardown(test_field_options_checked_at_init, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
