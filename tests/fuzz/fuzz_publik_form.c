/*
 * fuzz_publik_form.c - libFuzzer target over what the publik connector
 * reads from w.c.s. (connectors/publik/publik_wcs.c): the bytes are a reply
 * or a webhook body; they go through the {err, data} envelope parser, the
 * detail line, and, when they are JSON, the form export -> change records
 * conversion (with and without a forced slug and an echo author).
 * Invariants: a parsed envelope is OK/ERR only with an object root, err >= 0
 * and err 0 exactly for OK; change records have record ids
 * "<slug>/<id>/created" or "<slug>/<id>/<n>", valid slugs and ids, only the
 * first one is a creation, and no record carries file contents.
 *
 * Seeds: tests/fuzz/corpus/publik_form/ (the w.c.s. example replies and a
 * webhook body). Build and run by hand:
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Ihub -Iconnectors/publik \
 *     $(pkg-config --cflags libxml-2.0) tests/fuzz/fuzz_publik_form.c connectors/publik/publik_wcs.c \
 *     connectors/http/http_body.c hub/jsonptr.c hub/safeparse.c -ljansson -lxml2 -lcrypto \
 *     -o fuzz_publik_form
 *   ./fuzz_publik_form -max_total_time=60 tests/fuzz/corpus/publik_form/
 * Or configure with -DRELAIS_FUZZ=ON (clang).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "publik_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

/* No object in v has both "filename" and "content". */
static int no_file_content(const json_t *v)
{
    const char *k;
    json_t *x;
    size_t i;
    if (json_is_object(v)) {
        if (json_object_get(v, "filename") && json_object_get(v, "content")) return 0;
        json_object_foreach((json_t *)v, k, x) if (!no_file_content(x)) return 0;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) if (!no_file_content(x)) return 0;
    }
    return 1;
}

static void check_changes(const json_t *form, const char *slug, const char *self)
{
    relais_publik_changes ch;
    char err[256];
    if (relais_publik_form_changes(form, slug, self, &ch, err, sizeof err) != 0) {
        check(err[0] != '\0' && ch.n == 0 && ch.c == NULL);
        return;
    }
    check(relais_publik_slug_ok(ch.slug) == 0 && relais_publik_id_ok(ch.id) == 0);
    if (slug) check(strcmp(ch.slug, slug) == 0);
    for (size_t i = 0; i < ch.n; i++) {
        char want[256];
        size_t rl = strlen(ch.c[i].record_id);
        int ends_created = rl > 8 && strcmp(ch.c[i].record_id + rl - 8, "/created") == 0;
        check(ch.c[i].created == (i == 0 && ends_created));
        if (ch.c[i].created) snprintf(want, sizeof want, "%s/%s/created", ch.slug, ch.id);
        else snprintf(want, sizeof want, "%s/%s/%lld", ch.slug, ch.id,
                      (long long)json_integer_value(json_object_get(ch.c[i].record, "index")));
        check(strcmp(want, ch.c[i].record_id) == 0);
        check(json_is_string(json_object_get(ch.c[i].record, "status")));
        check(no_file_content(json_object_get(ch.c[i].record, "form")));
        if (!self) check(ch.c[i].echo == 0);
    }
    relais_publik_changes_free(&ch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relais_publik_env env;
    relais_publik_env_kind k = relais_publik_env_parse((const char *)data, size, &env);
    char line[400];
    relais_publik_env_describe(k == RELAIS_PUBLIK_ENV_MALFORMED ? NULL : &env, 200, (const char *)data, size,
                               line, sizeof line);
    check(strlen(line) < sizeof line);
    json_t *s = json_string(line);   /* valid UTF-8, one line */
    check(s != NULL && strchr(line, '\n') == NULL);
    json_decref(s);
    switch (k) {
    case RELAIS_PUBLIK_ENV_OK:
        check(json_is_object(env.root) && env.err == 0);
        break;
    case RELAIS_PUBLIK_ENV_ERR:
        check(json_is_object(env.root) && env.err > 0);
        break;
    case RELAIS_PUBLIK_ENV_BARE:
        check(env.root != NULL);
        break;
    case RELAIS_PUBLIK_ENV_MALFORMED:
        check(env.root == NULL && env.error[0] != '\0');
        break;
    }
    if (env.root) {
        check_changes(env.root, NULL, NULL);
        check_changes(env.root, "signalement-voirie", "relais");
        json_t *data_member = json_object_get(env.root, "data");
        char slug[128], id[80];
        if (relais_publik_form_slug(env.root, slug, sizeof slug) == 0) check(relais_publik_slug_ok(slug) == 0);
        if (relais_publik_form_id(data_member, id, sizeof id) == 0) check(relais_publik_id_ok(id) == 0);
    }
    relais_publik_env_free(&env);
    /* the bytes as a local id */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char slug[128], id[80];
    if (relais_publik_local_split(text, slug, sizeof slug, id, sizeof id) == 0)
        check(relais_publik_slug_ok(slug) == 0 && relais_publik_id_ok(id) == 0);
    free(text);
    return 0;
}
