/*
 * test_maptest.c - unit tests of hub/maptest.c (`relais test`): each test
 * builds a temporary directory with a canonical schema, a mapping and test
 * files, runs relais_maptest_run() into a memory stream and checks the exit
 * status and the report: passing suites, wrong expectations with their diff,
 * expect_error, invalid test files named FILE:LINE, JSON compared as values,
 * XML compared canonically, CSV byte for byte, the fixed test envelope,
 * local_id, schema validation, and the line diff itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "testsupport.h"
#include "maptest.h"
#include "event_int.h"

typedef struct fixture {
    char dir[256];       /* the temporary root */
    char schemas[300];   /* dir/schemas */
    char *report;        /* output of the last run */
    int   rc;
    relais_maptest_counts counts;
} fixture;

static void write_file(fixture *fx, const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", fx->dir, rel);
    /* create the parent directories */
    for (char *p = path + strlen(fx->dir) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *SCHEMA_REQUEST =
    "{\"type\": \"object\", \"required\": [\"category\", \"channel\"],\n"
    " \"properties\": {\"category\": {\"type\": \"string\"},\n"
    "                \"channel\": {\"enum\": [\"web\", \"phone\"]},\n"
    "                \"priority\": {\"type\": \"number\"}}}\n";

static const char *MAPPING_JSON =
    "format: json\n"
    "tables:\n"
    "  intervention:\n"
    "    values: {\"Nids de poule\": VOI-03, \"Tags\": TAG-01}\n"
    "inbound:\n"
    "  - when: {from: /kind, not_equals: unmapped}\n"
    "    type: fr.relais.grc.request.created.v1\n"
    "    subject: {template: \"request/{/id}\"}\n"
    "    record_id: {from: /id}\n"
    "    data:\n"
    "      - to: /category\n"
    "        from: /category\n"
    "        transform: [{table: intervention}]\n"
    "        required: true\n"
    "      - to: /channel\n"
    "        from: /channel\n"
    "        default: web\n"
    "      - to: /priority\n"
    "        from: /priority\n"
    "outbound:\n"
    "  - match: [fr.relais.grc.request.created.v1]\n"
    "    data:\n"
    "      - to: /num\n"
    "        from: /subject\n"
    "      - to: /cat\n"
    "        from: /data/category\n"
    "      - to: /ref\n"
    "        from: /id\n"
    "      - to: /at\n"
    "        from: /time\n"
    "      - to: /src\n"
    "        from: /source\n"
    "      - to: /tenant\n"
    "        from: /tenant\n"
    "      - to: /local\n"
    "        from: /localid\n"
    "      - to: /prio\n"
    "        from: /data/priority\n";

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/relais-maptest-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->schemas, sizeof fx->schemas, "%s/schemas", fx->dir);
    write_file(fx, "schemas/events/fr.relais.grc.request.created.v1.json", SCHEMA_REQUEST);
    write_file(fx, "schemas/events/fr.relais.grc.request.closed.v1.json",
               "{\"type\": \"object\", \"required\": [\"answer\"]}\n");
    write_file(fx, "tests/mappings/grc.yaml", MAPPING_JSON);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", fx->dir);
    free(fx->report);
    free(fx);
    return 0;
}

/* Run `relais test` on rel (under the fixture root); the report is kept. */
static int run(fixture *fx, const char *rel)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", fx->dir, rel);
    free(fx->report);
    fx->report = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&fx->report, &len);
    assert_non_null(out);
    fx->rc = relais_maptest_run(path, fx->schemas, out, &fx->counts);
    fclose(out);
    return fx->rc;
}

static void assert_report_has(const fixture *fx, const char *needle)
{
    if (!strstr(fx->report, needle))
        fail_msg("report lacks \"%s\":\n%s", needle, fx->report);
}

static void assert_report_lacks(const fixture *fx, const char *needle)
{
    if (strstr(fx->report, needle))
        fail_msg("report has \"%s\":\n%s", needle, fx->report);
}

/* ---- passing suites ------------------------------------------------------- */

static void test_passing_suite(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/records/pothole.json",
               "{\"id\": 8912, \"category\": \"Nids de poule\", \"priority\": 2}\n");
    write_file(fx, "tests/grc.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: pothole\n"
        "    input_file: records/pothole.json\n"
        "    expect_event:\n"
        "      type: fr.relais.grc.request.created.v1\n"
        "      subject: request/8912\n"
        "      record_id: \"8912\"\n"
        "      data: {priority: 2.0, channel: web, category: VOI-03}\n"   /* 2 == 2.0, any key order */
        "  - name: inline input\n"
        "    input: '{\"id\": \"5\", \"category\": \"Tags\", \"channel\": \"phone\"}'\n"
        "    expect_event:\n"
        "      data: {category: TAG-01, channel: phone}\n");
    /* found recursively; expect_event_file; subject: null expects none */
    write_file(fx, "tests/deep/er/nested.test.yaml",
        "mapping: ../../mappings/grc.yaml\n"
        "tests:\n"
        "  - name: nested\n"
        "    input: '{\"category\": \"Tags\"}'\n"
        "    expect_event_file: expected.json\n"
        "  - name: no subject\n"
        "    input: '{\"category\": \"Tags\"}'\n"
        "    expect_event: {subject: null, record_id: null}\n");
    write_file(fx, "tests/deep/er/expected.json",
               "{\"type\": \"fr.relais.grc.request.created.v1\", \"subject\": null,"
               " \"data\": {\"category\": \"TAG-01\", \"channel\": \"web\"}}");
    /* hidden folders and other files are not searched */
    write_file(fx, "tests/.hidden/broken.test.yaml", "nonsense: [\n");
    write_file(fx, "tests/notes.yaml", "nonsense: [\n");
    assert_int_equal(run(fx, "tests"), 0);
    assert_report_has(fx, "PASS ");
    assert_report_has(fx, "grc.test.yaml: pothole\n");
    assert_report_has(fx, "grc.test.yaml: inline input\n");
    assert_report_has(fx, "/tests/deep/er/nested.test.yaml: nested\n");
    assert_report_has(fx, "/tests/deep/er/nested.test.yaml: no subject\n");
    assert_report_has(fx, "4 tests, 4 passed, 0 failed\n");
    assert_int_equal(fx->counts.tests, 4);
    assert_int_equal(fx->counts.passed, 4);
    assert_int_equal(fx->counts.files, 2);
    /* sorted by path: tests/deep/... before tests/grc.test.yaml */
    assert_true(strstr(fx->report, "nested.test.yaml") < strstr(fx->report, "grc.test.yaml"));
}

/* Without a record id from the mapping, the event's recordid is the SHA-256
 * of the canonical data, as the hub makes it; correlationid is the id. */
static void test_default_record_and_correlation_ids(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/mappings/norid.yaml",
        "format: json\n"
        "inbound:\n"
        "  - type: fr.relais.grc.request.created.v1\n"
        "    data:\n"
        "      - to: /category\n"
        "        from: /c\n"
        "      - to: /channel\n"
        "        value: web\n"
        "outbound:\n"
        "  - data:\n"
        "      - to: /rid\n"
        "        from: /recordid\n"
        "      - to: /corr\n"
        "        from: /correlationid\n");
    char sha[65];
    const char *canon = "{\"category\":\"TAG-01\",\"channel\":\"web\"}";
    relais_sha256_hex(canon, strlen(canon), sha);
    char text[1024];
    snprintf(text, sizeof text,
        "mapping: mappings/norid.yaml\n"
        "tests:\n"
        "  - name: ids\n"
        "    input: {c: TAG-01}\n"
        "    expect_output: {rid: %s, corr: 00000000-0000-7000-8000-000000000000}\n", sha);
    write_file(fx, "tests/ids.test.yaml", text);
    assert_int_equal(run(fx, "tests"), 0);
    assert_report_has(fx, "1 test, 1 passed, 0 failed\n");
}

/* The event rendered for an inbound test has the fixed envelope, so outputs
 * are reproducible; local_id reaches the rules as /localid. */
static void test_fixed_envelope_and_local_id(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/out.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: rendered\n"
        "    input: '{\"id\": \"7\", \"category\": \"Tags\", \"priority\": 1.5}'\n"
        "    local_id: \"4521\"\n"
        "    expect_output: |\n"
        "      {\"tenant\": \"test\", \"src\": \"/relais/test/test\", \"at\": \"2026-01-01T00:00:00Z\",\n"
        "       \"ref\": \"00000000-0000-7000-8000-000000000000\", \"cat\": \"TAG-01\",\n"
        "       \"num\": \"request/7\", \"local\": \"4521\", \"prio\": 1.5}\n");
    assert_int_equal(run(fx, "tests"), 0);
    assert_report_has(fx, "1 test, 1 passed, 0 failed\n");
}

/* An outbound-only test: the event is given; missing envelope attributes
 * get the test values; expect_output may be written as YAML for json. */
static void test_outbound_only(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/ev/created.json",
               "{\"type\": \"fr.relais.grc.request.created.v1\", \"subject\": \"request/1\","
               " \"data\": {\"category\": \"X\", \"channel\": \"web\"}}");
    write_file(fx, "tests/out.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: from a file\n"
        "    event_file: ev/created.json\n"
        "    expect_output:\n"
        "      num: request/1\n"
        "      cat: X\n"
        "      ref: 00000000-0000-7000-8000-000000000000\n"
        "      at: 2026-01-01T00:00:00Z\n"
        "      src: /relais/test/test\n"
        "      tenant: test\n"
        "  - name: inline, with its own id\n"
        "    event: {id: abc, type: fr.relais.grc.request.created.v1, data: {category: Y, channel: phone}}\n"
        "    expect_output: '{\"cat\": \"Y\", \"ref\": \"abc\", \"at\": \"2026-01-01T00:00:00Z\","
        " \"src\": \"/relais/test/test\", \"tenant\": \"test\"}'\n");
    assert_int_equal(run(fx, "tests"), 0);
    assert_report_has(fx, "2 tests, 2 passed, 0 failed\n");
}

/* ---- failures --------------------------------------------------------------- */

static void test_wrong_expectation_prints_diff(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/grc.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: good\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\"}'\n"
        "    expect_event: {data: {category: TAG-01, channel: web}}\n"
        "  - name: wrong category\n"
        "    input: '{\"id\": \"2\", \"category\": \"Tags\"}'\n"
        "    expect_event:\n"
        "      subject: request/2\n"
        "      data: {category: VOI-03, channel: web}\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "grc.test.yaml: good\n");
    assert_report_has(fx, "grc.test.yaml:6: wrong category\n");
    assert_report_has(fx, "  expect_event differs:\n");
    assert_report_has(fx, "  --- expected\n  +++ actual\n");
    assert_report_has(fx, "  -    \"category\": \"VOI-03\",\n");
    assert_report_has(fx, "  +    \"category\": \"TAG-01\",\n");
    assert_report_has(fx, "       \"channel\": \"web\"\n");    /* context line */
    assert_report_lacks(fx, "-    \"channel\"");              /* equal lines are not changes */
    assert_report_has(fx, "2 tests, 1 passed, 1 failed\n");
    assert_int_equal(fx->counts.failed, 1);
}

static void test_json_output_compared_as_values(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/grc.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: integer against real and key order\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\", \"priority\": 3}'\n"
        "    expect_output: '{\"prio\": 3.0, \"cat\": \"TAG-01\", \"num\": \"request/1\",\n"
        "      \"tenant\": \"test\", \"src\": \"/relais/test/test\", \"at\": \"2026-01-01T00:00:00Z\",\n"
        "      \"ref\": \"00000000-0000-7000-8000-000000000000\"}'\n"
        "  - name: a different number\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\", \"priority\": 3}'\n"
        "    expect_output: '{\"prio\": 3.5, \"cat\": \"TAG-01\", \"num\": \"request/1\",\n"
        "      \"tenant\": \"test\", \"src\": \"/relais/test/test\", \"at\": \"2026-01-01T00:00:00Z\",\n"
        "      \"ref\": \"00000000-0000-7000-8000-000000000000\"}'\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "PASS ");
    assert_report_has(fx, ": integer against real and key order\n");
    assert_report_has(fx, "grc.test.yaml:8: a different number\n");
    assert_report_has(fx, "  expect_output differs:\n");
    assert_report_has(fx, "  -  \"prio\": 3.5,\n");
    assert_report_has(fx, "  +  \"prio\": 3,\n");
}

static void test_expect_error(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/err.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: bad category is refused\n"
        "    input: '{\"id\": \"1\", \"category\": \"Graffiti\"}'\n"
        "    expect_error: \"not in table 'intervention'\"\n"
        "  - name: no case matches\n"
        "    input: '{\"id\": \"1\", \"kind\": \"unmapped\"}'\n"
        "    expect_error: no inbound case\n"
        "  - name: malformed input\n"
        "    input: '{\"id\": '\n"
        "    expect_error: input\n"
        "  - name: expected error does not happen\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\"}'\n"
        "    expect_error: \"not in table\"\n"
        "  - name: another error happens\n"
        "    input: '{\"id\": \"1\", \"category\": \"Graffiti\"}'\n"
        "    expect_error: \"required value\"\n"
        "  - name: an unexpected error\n"
        "    input: '{\"id\": \"1\", \"category\": \"Graffiti\"}'\n"
        "    expect_event: {data: {category: X}}\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "err.test.yaml: bad category is refused\n");
    assert_report_has(fx, "err.test.yaml: no case matches\n");
    assert_report_has(fx, "err.test.yaml: malformed input\n");
    assert_report_has(fx, "err.test.yaml:12: expected error does not happen\n"
                          "  expect_error: \"not in table\" but the record mapped without error\n");
    assert_report_has(fx, "err.test.yaml:15: another error happens\n"
                          "  expect_error: \"required value\" but the error was:\n");
    assert_report_has(fx, "grc.yaml:11: data /category: ");   /* the mapping's own message */
    assert_report_has(fx, "err.test.yaml:18: an unexpected error\n");
    assert_report_has(fx, "6 tests, 3 passed, 3 failed\n");
}

/* Every mapped data is validated against the canonical schema of its type. */
static void test_schema_validation(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/mappings/other.yaml",
        "format: json\n"
        "inbound:\n"
        "  - type: fr.relais.grc.request.unknown.v1\n"
        "    data:\n"
        "      - to: /x\n"
        "        value: 1\n");
    write_file(fx, "tests/a.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: channel not allowed\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\", \"channel\": \"fax\"}'\n"
        "    expect_event: {data: {category: TAG-01, channel: fax}}\n"
        "  - name: schema faults can be expected\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\", \"channel\": \"fax\"}'\n"
        "    expect_error: $.data.channel\n");
    write_file(fx, "tests/b.test.yaml",
        "mapping: mappings/other.yaml\n"
        "tests:\n"
        "  - name: no schema\n"
        "    input: '{}'\n"
        "    expect_event: {data: {x: 1}}\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "a.test.yaml:3: channel not allowed\n"
                          "  data does not match the canonical schema of fr.relais.grc.request.created.v1:\n"
                          "    $.data.channel: ");
    assert_report_has(fx, "a.test.yaml: schema faults can be expected\n");
    assert_report_has(fx, "b.test.yaml:3: no schema\n"
                          "  no canonical schema for type fr.relais.grc.request.unknown.v1\n");
    /* files run in sorted order */
    assert_true(strstr(fx->report, "a.test.yaml") < strstr(fx->report, "b.test.yaml"));
}

/* ---- invalid test files ------------------------------------------------------ */

static void test_invalid_file_names_file_and_line(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/bad.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: typo\n"
        "    input: '{}'\n"
        "    expect_evnt: {type: x}\n"
        "  - name: missing record file\n"
        "    input_file: records/nope.json\n"
        "    expect_error: x\n"
        "  - name: two inputs\n"
        "    input: '{}'\n"
        "    event: {type: a.b}\n"
        "    expect_error: x\n"
        "  - name: nothing checked\n"             /* line 13 */
        "    input: '{}'\n"
        "  - name: error and output\n"            /* line 15 */
        "    input: '{}'\n"
        "    expect_error: x\n"
        "    expect_output: '{}'\n"
        "  - name: not an event\n"                /* line 19 */
        "    event: {type: Not Valid}\n"
        "    expect_output: '{}'\n"
        "  - name: csv delimiter on json\n"       /* line 22 */
        "    input: '{}'\n"
        "    delimiter: \";\"\n"
        "    expect_error: x\n"
        "  - name: two of a kind\n"               /* line 26 */
        "    input: '{}'\n"
        "    input_file: records/nope.json\n"
        "    expect_output: '{}'\n"
        "    expect_output_file: records/nope.json\n"
        "    expect_event: {}\n"
        "    expect_event_file: records/nope.json\n");
    write_file(fx, "tests/mappings/inonly.yaml",
        "format: json\n"
        "inbound:\n"
        "  - type: fr.relais.grc.request.created.v1\n"
        "    data:\n"
        "      - to: /category\n"
        "        from: /c\n");
    write_file(fx, "tests/inonly.test.yaml",
        "mapping: mappings/inonly.yaml\n"
        "tests:\n"
        "  - input: '{}'\n"
        "    expect_output: '{}'\n");
    write_file(fx, "tests/nomap.test.yaml",
        "mapping: mappings/absent.yaml\n"
        "tests:\n"
        "  - input: '{}'\n"
        "    expect_error: x\n");
    write_file(fx, "tests/top.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "test: []\n");
    write_file(fx, "tests/good.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - input: '{\"id\": \"1\", \"category\": \"Tags\"}'\n"
        "    expect_event: {data: {category: TAG-01, channel: web}}\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "/tests/bad.test.yaml:5: unknown key 'expect_evnt' in a test");
    assert_report_has(fx, "/tests/bad.test.yaml:7: input_file: cannot read ");
    assert_report_has(fx, "records/nope.json: No such file or directory\n");
    assert_report_has(fx, "/tests/bad.test.yaml:9: test 'two inputs': give only one of input");
    assert_report_has(fx, "/tests/bad.test.yaml:13: test 'nothing checked' checks nothing");
    assert_report_has(fx, "/tests/bad.test.yaml:15: test 'error and output': expect_error excludes "
                          "expect_event and expect_output");
    assert_report_has(fx, "/tests/bad.test.yaml:20: event: not a valid CloudEvent: $.type");
    assert_report_has(fx, "/tests/bad.test.yaml:22: test 'csv delimiter on json': delimiter is for "
                          "a csv input");
    assert_report_has(fx, "/tests/bad.test.yaml:26: test 'two of a kind': give only one of input");
    assert_report_has(fx, "/tests/bad.test.yaml:30: give expect_output or expect_output_file, not both");
    assert_report_has(fx, "/tests/bad.test.yaml:32: give expect_event or expect_event_file, not both");
    assert_report_has(fx, "/tests/inonly.test.yaml:4: test 'test 1': mapping ");
    assert_report_has(fx, "inonly.yaml has no outbound rules");
    assert_report_has(fx, "/tests/nomap.test.yaml:1: mapping: cannot read ");
    assert_report_has(fx, "/tests/top.test.yaml:2: unknown key 'test'");
    assert_report_has(fx, "/tests/top.test.yaml:1: tests: missing");
    /* the valid file still runs; an unnamed test is named by its position */
    assert_report_has(fx, "good.test.yaml: test 1\n");
    assert_report_has(fx, "1 test, 1 passed, 0 failed, 4 invalid test files\n");
    assert_int_equal(fx->counts.invalid_files, 4);
}

static void test_mapping_errors_reported(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/mappings/broken.yaml", "format: json\ninbound:\n  - type: a.b\n    bogus: 1\n");
    write_file(fx, "tests/x.test.yaml",
        "mapping: mappings/broken.yaml\n"
        "tests:\n"
        "  - input: '{}'\n"
        "    expect_error: x\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "broken.yaml:4: ");                  /* the mapping's own FILE:LINE */
    assert_report_has(fx, "x.test.yaml:1: mapping: ");
    assert_report_has(fx, "0 tests, 0 passed, 0 failed, 1 invalid test file\n");
}

static void test_no_tests_found(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/readme.txt", "nothing here\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "no *.test.yaml files");
    assert_int_equal(run(fx, "no-such-dir"), 1);
    assert_report_has(fx, "no-such-dir: No such file or directory");
}

static void test_bad_schema_dir(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/x.test.yaml",
        "mapping: mappings/grc.yaml\ntests:\n  - input: '{}'\n    expect_error: x\n");
    free(fx->report);
    size_t len = 0;
    FILE *out = open_memstream(&fx->report, &len);
    char path[600], sch[600];
    snprintf(path, sizeof path, "%s/tests", fx->dir);
    snprintf(sch, sizeof sch, "%s/absent-schemas", fx->dir);
    assert_int_equal(relais_maptest_run(path, sch, out, NULL), 1);
    fclose(out);
    assert_report_has(fx, "canonical schemas ");
    assert_report_has(fx, "absent-schemas");
}

/* ---- XML and CSV ---------------------------------------------------------------- */

static const char *MAPPING_XML =
    "format: xml\n"
    "namespaces:\n"
    "  ec: \"urn:example:ec\"\n"
    "  x: \"urn:example:x\"\n"
    "outbound:\n"
    "  - root: ec:demande\n"
    "    data:\n"
    "      - to: \"@numero\"\n"
    "        from: /subject\n"
    "      - to: ec:acte/@type\n"
    "        value: N\n"
    "      - to: ec:acte/@x:origine\n"
    "        value: relais\n"
    "      - to: ec:nom\n"
    "        from: /data/answer\n";

static void test_xml_compared_canonically(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/mappings/ec.yaml", MAPPING_XML);
    write_file(fx, "tests/expected.xml",
        "<?xml version=\"1.0\"?>\n"
        "<!-- other prefixes, attributes in another order, indentation -->\n"
        "<p:demande xmlns:p=\"urn:example:ec\" numero=\"s/1\">\n"
        "    <p:acte xmlns:q=\"urn:example:x\" q:origine=\"relais\" type=\"N\"></p:acte>\n"
        "    <!-- comments are not compared -->\n"
        "    <p:nom><![CDATA[Rebou]]>ché</p:nom>\n"
        "</p:demande>\n");
    write_file(fx, "tests/ec.test.yaml",
        "mapping: mappings/ec.yaml\n"
        "tests:\n"
        "  - name: same document\n"
        "    event: {type: fr.relais.grc.request.closed.v1, subject: s/1, data: {answer: Rebouché}}\n"
        "    expect_output_file: expected.xml\n"
        "  - name: default namespace\n"
        "    event: {type: fr.relais.grc.request.closed.v1, subject: s/1, data: {answer: Rebouché}}\n"
        "    expect_output: |\n"
        "      <demande xmlns=\"urn:example:ec\" xmlns:o=\"urn:example:x\" numero=\"s/1\">"
        "<acte type=\"N\" o:origine=\"relais\"/><nom>Rebouché</nom></demande>\n"
        "  - name: different text\n"
        "    event: {type: fr.relais.grc.request.closed.v1, subject: s/1, data: {answer: Rebouché}}\n"
        "    expect_output: |\n"
        "      <demande xmlns=\"urn:example:ec\" xmlns:o=\"urn:example:x\" numero=\"s/1\">"
        "<acte type=\"N\" o:origine=\"relais\"/><nom>Bouché</nom></demande>\n"
        "  - name: different attribute namespace\n"
        "    event: {type: fr.relais.grc.request.closed.v1, subject: s/1, data: {answer: Rebouché}}\n"
        "    expect_output: |\n"
        "      <demande xmlns=\"urn:example:ec\" xmlns:o=\"urn:example:other\" numero=\"s/1\">"
        "<acte type=\"N\" o:origine=\"relais\"/><nom>Rebouché</nom></demande>\n"
        "  - name: not XML\n"
        "    event: {type: fr.relais.grc.request.closed.v1, subject: s/1, data: {answer: Rebouché}}\n"
        "    expect_output: '<demande'\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "ec.test.yaml: same document\n");
    assert_report_has(fx, "ec.test.yaml: default namespace\n");
    assert_report_has(fx, "ec.test.yaml:10: different text\n"
                          "  expect_output differs (XML compared in canonical form):\n");
    assert_report_has(fx, "  -  <nom>Bouché</nom>\n  +  <nom>Rebouché</nom>\n");
    assert_report_has(fx, "ec.test.yaml:14: different attribute namespace\n");
    assert_report_has(fx, "ec.test.yaml:18: not XML\n  expect_output is not well-formed XML: ");
    assert_report_has(fx, "5 tests, 2 passed, 3 failed\n");
}

static void test_csv_text_output_and_input(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/mappings/pay.yaml",
        "format: csv\n"
        "inbound:\n"
        "  - type: fr.relais.grc.request.created.v1\n"
        "    record_id: {from: Ref}\n"
        "    data:\n"
        "      - to: /category\n"
        "        from: Cat\n"
        "      - to: /channel\n"
        "        value: web\n"
        "outbound:\n"
        "  - data:\n"
        "      - to: Num\n"
        "        from: /recordid\n"
        "      - to: Cat\n"
        "        from: /data/category\n");
    write_file(fx, "tests/rec.csv", "Ref;Cat\nR-1;\"VOI;03\"\n");
    write_file(fx, "tests/pay.test.yaml",
        "mapping: mappings/pay.yaml\n"
        "tests:\n"
        "  - name: from a csv file\n"
        "    input_file: rec.csv\n"
        "    delimiter: \";\"\n"
        "    expect_event: {record_id: R-1, data: {category: \"VOI;03\", channel: web}}\n"
        "    expect_output: |\n"
        "      Num,Cat\n"
        "      R-1,VOI;03\n"
        "  - name: columns as YAML, no final newline expected\n"
        "    input: {Ref: R-2, Cat: ECL-01}\n"
        "    expect_output: \"Num,Cat\\nR-2,ECL-01\"\n"
        "  - name: one byte differs\n"
        "    input: {Ref: R-3, Cat: ECL-01}\n"
        "    expect_output: |\n"
        "      Num,Cat\n"
        "      R-3,ECL-1\n"
        "  - name: two records are refused\n"
        "    input: \"Ref,Cat\\nR-4,A\\nR-5,B\\n\"\n"
        "    expect_error: one record per test\n");
    assert_int_equal(run(fx, "tests"), 1);
    assert_report_has(fx, "pay.test.yaml: from a csv file\n");
    assert_report_has(fx, "pay.test.yaml: columns as YAML, no final newline expected\n");
    assert_report_has(fx, "pay.test.yaml:13: one byte differs\n"
                          "  expect_output differs:\n"
                          "  --- expected\n"
                          "  +++ actual\n"
                          "  @@ -1,2 +1,2 @@\n"
                          "   Num,Cat\n"
                          "  -R-3,ECL-1\n"
                          "  +R-3,ECL-01\n");
    assert_report_has(fx, "pay.test.yaml: two records are refused\n");
    assert_report_has(fx, "4 tests, 3 passed, 1 failed\n");
}

/* A single test file can be given instead of a directory. */
static void test_single_file(void **state)
{
    fixture *fx = *state;
    write_file(fx, "tests/one.test.yaml",
        "mapping: mappings/grc.yaml\n"
        "tests:\n"
        "  - name: only this\n"
        "    input: '{\"id\": \"1\", \"category\": \"Tags\"}'\n"
        "    expect_event: {type: fr.relais.grc.request.created.v1}\n");
    write_file(fx, "tests/other.test.yaml", "not: valid\n");
    assert_int_equal(run(fx, "tests/one.test.yaml"), 0);
    assert_report_has(fx, "1 test, 1 passed, 0 failed\n");
    assert_report_lacks(fx, "other.test.yaml");
}

/* ---- the line diff ------------------------------------------------------------- */

static char *diff_of(const char *a, const char *b)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&mem, &len);
    assert_non_null(out);
    relais_maptest_diff(out, a, b, "");
    fclose(out);
    return mem;
}

static void test_diff_hunks(void **state)
{
    (void)state;
    char *d = diff_of("a\nb\nc\n", "a\nb\nc\n");
    assert_string_equal(d, "");
    free(d);

    d = diff_of("a\nb\nc\n", "a\nx\nc\n");
    assert_string_equal(d, "--- expected\n+++ actual\n@@ -1,3 +1,3 @@\n a\n-b\n+x\n c\n");
    free(d);

    /* two changes far apart: two hunks with 3 lines of context each */
    d = diff_of("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n",
                "1\nX\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\nY\n14\n");
    assert_string_equal(d, "--- expected\n+++ actual\n"
                           "@@ -1,5 +1,5 @@\n 1\n-2\n+X\n 3\n 4\n 5\n"
                           "@@ -10,5 +10,5 @@\n 10\n 11\n 12\n-13\n+Y\n 14\n");
    free(d);

    /* insertion and deletion: the longest common subsequence is kept */
    d = diff_of("a\nb\nc\nd\n", "a\nc\nd\ne\n");
    assert_string_equal(d, "--- expected\n+++ actual\n@@ -1,4 +1,4 @@\n a\n-b\n c\n d\n+e\n");
    free(d);

    /* beyond the LCS table limit: the changed middle is shown whole, still a valid diff */
    size_t n = 2100, cap = n * 8 + 16;
    char *a = malloc(cap), *b = malloc(cap);
    assert_non_null(a);
    assert_non_null(b);
    size_t la = 0, lb = 0;
    la += (size_t)snprintf(a + la, cap - la, "head\n");
    lb += (size_t)snprintf(b + lb, cap - lb, "head\n");
    for (size_t i = 0; i < n; i++) {
        la += (size_t)snprintf(a + la, cap - la, "a%zu\n", i);
        lb += (size_t)snprintf(b + lb, cap - lb, "b%zu\n", i);
    }
    d = diff_of(a, b);
    assert_true(strncmp(d, "--- expected\n+++ actual\n@@ -1,2101 +1,2101 @@\n head\n-a0\n-a1\n", 50) == 0);
    assert_non_null(strstr(d, "\n-a2099\n+b0\n+b1\n"));
    assert_true(strlen(d) > 2 * n * 3);
    free(d);
    free(a);
    free(b);

    /* from nothing */
    d = diff_of("", "a\n");
    assert_string_equal(d, "--- expected\n+++ actual\n@@ -0,0 +1,1 @@\n+a\n");
    free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_passing_suite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_envelope_and_local_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_record_and_correlation_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_expectation_prints_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json_output_compared_as_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expect_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_file_names_file_and_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mapping_errors_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_tests_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_schema_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_xml_compared_canonically, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_text_output_and_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_single_file, setup, teardown),
        cmocka_unit_test(test_diff_hunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
