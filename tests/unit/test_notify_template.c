/*
 * test_notify_template.c - the notify connector's templates
 * (connectors/notify/notify_tpl.c): {{placeholder}} parsing and its errors
 * (file and line), rendering (lines without values left out), event types,
 * and the built-in French templates in connectors/notify/templates/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>
#include "../../connectors/notify/notify_int.h"

static notify_tpl *parse(const char *text, notify_kind kind, int subject, char *err, size_t errlen)
{
    return notify_tpl_parse("t.txt", text, strlen(text), kind, subject, err, errlen);
}

static void test_kinds(void **state)
{
    (void)state;
    notify_kind k;
    assert_int_equal(notify_kind_of_type("fr.relais.grc.request.created.v1", &k), 0);
    assert_int_equal(k, NOTIFY_CREATED);
    assert_int_equal(notify_kind_of_type("fr.relais.grc.request.updated.v12", &k), 0);
    assert_int_equal(k, NOTIFY_UPDATED);
    assert_int_equal(notify_kind_of_type("grc.request.closed", &k), 0);
    assert_int_equal(k, NOTIFY_CLOSED);
    assert_int_equal(notify_kind_of_type("fr.relais.grc.request.closedx.v1", &k), -1);
    assert_int_equal(notify_kind_of_type("fr.relais.xgrc.request.closed.v1", &k), -1);
    assert_int_equal(notify_kind_of_type("fr.relais.technical.workorder.created.v1", &k), -1);
    assert_int_equal(notify_kind_of_type("fr.relais.grc.request.created.v", &k), -1);
    assert_int_equal(notify_kind_of_type(NULL, &k), -1);
}

static void test_render(void **state)
{
    (void)state;
    char err[512] = "";
    notify_tpl *t = parse("Subject: Demande n° {{ number }} : {{status_label}}\r\n"
                          "\n"
                          "Bonjour,\n"
                          "\n"
                          "Votre demande {{number}} ({{category}}) est {{status_label}}.\n"
                          "Lieu : {{address}}\n"
                          "{{comment}}\n"
                          "\n"
                          "La mairie de {{town}}\n"
                          "\n\n",
                          NOTIFY_UPDATED, 1, err, sizeof err);
    assert_non_null(t);
    const char *vals[NOTIFY_PH_COUNT] = { 0 };
    vals[NOTIFY_PH_NUMBER] = "GRC-7";
    vals[NOTIFY_PH_STATUS_LABEL] = "en cours de traitement";
    vals[NOTIFY_PH_CATEGORY] = "Nids de poule";
    vals[NOTIFY_PH_COMMENT] = "Intervention demain.\nMerci.";
    vals[NOTIFY_PH_TOWN] = "Villebrune";
    char *subject = NULL, *body = NULL;
    assert_int_equal(notify_tpl_render(t, vals, &subject, &body), 0);
    assert_string_equal(subject, "Demande n° GRC-7 : en cours de traitement");
    /* "Lieu" has no value: the line is left out; leading and trailing blank lines dropped */
    assert_string_equal(body, "Bonjour,\n"
                              "\n"
                              "Votre demande GRC-7 (Nids de poule) est en cours de traitement.\n"
                              "Intervention demain.\nMerci.\n"
                              "\n"
                              "La mairie de Villebrune\n");
    free(subject);
    free(body);
    /* a value with a line break in the subject becomes a space */
    vals[NOTIFY_PH_STATUS_LABEL] = "en\r\ncours";
    assert_int_equal(notify_tpl_render(t, vals, &subject, &body), 0);
    assert_string_equal(subject, "Demande n° GRC-7 : en  cours");
    free(subject);
    free(body);
    notify_tpl_free(t);

    /* an SMS template: no subject line */
    t = parse("Mairie de {{town}} : demande {{number}} clôturée ({{outcome_label}}). {{answer}}\n",
              NOTIFY_CLOSED, 0, err, sizeof err);
    assert_non_null(t);
    const char *v2[NOTIFY_PH_COUNT] = { 0 };
    v2[NOTIFY_PH_TOWN] = "Massy";
    v2[NOTIFY_PH_NUMBER] = "o311-4";
    v2[NOTIFY_PH_OUTCOME_LABEL] = "résolue";
    assert_int_equal(notify_tpl_render(t, v2, NULL, &body), 0);
    assert_string_equal(body, "Mairie de Massy : demande o311-4 clôturée (résolue). \n");
    free(body);
    notify_tpl_free(t);
    notify_tpl_free(NULL);
}

/* Each invalid template is refused with the file, line and reason. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        notify_kind kind;
        int subject;
        const char *expect;
    } cases[] = {
        { "Subject: x\nBonjour {{nombre}}\n", NOTIFY_CREATED, 1,
          "t.txt:2: unknown placeholder {{nombre}} (known: number, status_label, category" },
        { "Subject: x\n\n\nLigne {{ number\n", NOTIFY_CREATED, 1, "t.txt:4: '{{' without '}}' on the same line" },
        { "Subject: x\nRéponse : {{answer}}\n", NOTIFY_CREATED, 1,
          "t.txt:2: {{answer}} is not available for grc.request.created (available: number, status_label" },
        { "Subject: x\n{{comment}}\n", NOTIFY_CLOSED, 1, "t.txt:2: {{comment}} is not available for grc.request.closed" },
        { "Bonjour\n", NOTIFY_CREATED, 1, "t.txt:1: the first line must be 'Subject: <text>'" },
        { "Subject:   \nBonjour\n", NOTIFY_CREATED, 1, "t.txt:1: empty subject" },
        { "Subject: {{oops}}\nBonjour\n", NOTIFY_CREATED, 1, "t.txt:1: unknown placeholder {{oops}}" },
        { "Subject: x\n\n\n", NOTIFY_CREATED, 1, "t.txt: no message text" },
        { "", NOTIFY_CREATED, 0, "t.txt: no message text" },
        { "a\nb\xC3\x28\n", NOTIFY_CREATED, 0, "t.txt:2: invalid UTF-8" },
        { "a\n\x01\n", NOTIFY_CREATED, 0, "t.txt:2: control character 0x01" },
        { "{{}}\n", NOTIFY_CREATED, 0, "t.txt:1: unknown placeholder {{}}" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512] = "";
        notify_tpl *t = parse(cases[i].text, cases[i].kind, cases[i].subject, err, sizeof err);
        if (t) fail_msg("case %zu accepted", i);
        if (strncmp(err, cases[i].expect, strlen(cases[i].expect)) != 0)
            fail_msg("case %zu: got '%s', expected '%s...'", i, err, cases[i].expect);
    }
    /* too large */
    size_t big = NOTIFY_TPL_MAX + 1;
    char *text = malloc(big);
    memset(text, 'a', big);
    char err[256];
    assert_null(notify_tpl_parse("big.txt", text, big, NOTIFY_CREATED, 0, err, sizeof err));
    assert_non_null(strstr(err, "big.txt: larger than"));
    free(text);
    /* a NUL byte inside is refused, never read past */
    assert_null(notify_tpl_parse("nul.txt", "ab\0cd", 5, NOTIFY_CREATED, 0, err, sizeof err));
    assert_string_equal(err, "nul.txt:1: control character 0x00");
}

static const char *builtin_dir(void)
{
    static char dir[4096];
    const char *src = getenv("RELAIS_SOURCE_DIR");
    if (!src) fail_msg("RELAIS_SOURCE_DIR not set (run through ctest)");
    snprintf(dir, sizeof dir, "%s/connectors/notify/templates", src);
    return dir;
}

static void test_builtin_templates(void **state)
{
    (void)state;
    notify_templates ts;
    char err[512] = "";
    if (notify_templates_load(&ts, builtin_dir(), err, sizeof err) != 0) fail_msg("%s", err);
    const char *vals[NOTIFY_PH_COUNT] = { 0 };
    vals[NOTIFY_PH_NUMBER] = "VB7K2QXM";
    vals[NOTIFY_PH_CATEGORY] = "Nids de poule";
    vals[NOTIFY_PH_TOWN] = "Villebrune";
    vals[NOTIFY_PH_DATE] = "5 mars 2026";
    vals[NOTIFY_PH_STATUS_LABEL] = "enregistrée";
    char *subject, *body;
    assert_int_equal(notify_tpl_render(ts.email[NOTIFY_CREATED], vals, &subject, &body), 0);
    assert_string_equal(subject, "Votre demande n° VB7K2QXM a bien été enregistrée");
    assert_non_null(strstr(body, "Son numéro est VB7K2QXM"));
    assert_null(strstr(body, "Lieu"));          /* no address: the line is left out */
    assert_null(strstr(body, "avant le"));      /* no deadline either */
    free(subject);
    free(body);
    assert_int_equal(notify_tpl_render(ts.sms[NOTIFY_CREATED], vals, NULL, &body), 0);
    assert_non_null(strstr(body, "VB7K2QXM"));
    free(body);
    vals[NOTIFY_PH_STATUS_LABEL] = "en cours de traitement";
    vals[NOTIFY_PH_COMMENT] = "Intervention programmée demain matin.";
    assert_int_equal(notify_tpl_render(ts.email[NOTIFY_UPDATED], vals, &subject, &body), 0);
    assert_string_equal(subject, "Votre demande n° VB7K2QXM est en cours de traitement");
    assert_non_null(strstr(body, "Intervention programmée demain matin."));
    free(subject);
    free(body);
    vals[NOTIFY_PH_COMMENT] = NULL;
    vals[NOTIFY_PH_STATUS_LABEL] = "clôturée";
    vals[NOTIFY_PH_OUTCOME_LABEL] = "résolue";
    vals[NOTIFY_PH_ANSWER] = "Le nid de poule a été rebouché.";
    assert_int_equal(notify_tpl_render(ts.email[NOTIFY_CLOSED], vals, &subject, &body), 0);
    assert_string_equal(subject, "Votre demande n° VB7K2QXM est clôturée");
    assert_non_null(strstr(body, "Le nid de poule a été rebouché."));
    /* whether the commitment was met is not the citizen's business */
    assert_null(strstr(body, "engagement"));
    assert_null(strstr(body, "délai"));
    free(subject);
    free(body);
    assert_int_equal(notify_tpl_render(ts.sms[NOTIFY_CLOSED], vals, NULL, &body), 0);
    assert_non_null(strstr(body, "Le nid de poule a été rebouché."));
    free(body);
    notify_templates_free(&ts);
    notify_templates_free(NULL);
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A folder of one's own: a missing file and a bad placeholder name the file
 * and the line. */
static void test_folder_errors(void **state)
{
    (void)state;
    char dir[] = "/tmp/relais-notify-tpl.XXXXXX";
    assert_non_null(mkdtemp(dir));
    notify_templates ts;
    char err[1024];
    assert_int_equal(notify_templates_load(&ts, dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "/request.created.txt: No such file or directory"));
    static const char *const names[] = { "request.created", "request.updated", "request.closed" };
    for (int i = 0; i < 3; i++) {
        char n[64];
        snprintf(n, sizeof n, "%s.txt", names[i]);
        write_file(dir, n, "Subject: Demande {{number}}\nBonjour {{town}}\n");
        snprintf(n, sizeof n, "%s.sms.txt", names[i]);
        write_file(dir, n, "Demande {{number}}\n");
    }
    assert_int_equal(notify_templates_load(&ts, dir, err, sizeof err), 0);
    notify_templates_free(&ts);
    write_file(dir, "request.updated.sms.txt", "Demande {{number}}\n{{numero}}\n");
    assert_int_equal(notify_templates_load(&ts, dir, err, sizeof err), -1);
    char want[4200];
    snprintf(want, sizeof want, "%s/request.updated.sms.txt:2: unknown placeholder {{numero}}", dir);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("got '%s'", err);
    for (int i = 0; i < 3; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s.txt", dir, names[i]);
        unlink(p);
        snprintf(p, sizeof p, "%s/%s.sms.txt", dir, names[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_builtin_templates),
        cmocka_unit_test(test_folder_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
