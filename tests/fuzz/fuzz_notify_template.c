/*
 * fuzz_notify_template.c - libFuzzer target over the notify connector's
 * template parser and renderer (connectors/notify/notify_tpl.c).
 *
 * Input: the first byte picks the event kind (created, updated, closed)
 * and whether the template is an email one (a "Subject:" first line); the
 * rest is the template text. A template that parses is rendered with every
 * value set, then with none, then with values holding line breaks and
 * braces; invariants: a refusal always says why, and names the file; a
 * rendered subject holds no control character; a rendered body never
 * starts with a blank line and ends with "\n" unless empty.
 * Seeds: tests/fuzz/corpus/notify_template/.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "notify_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static void render_and_check(const notify_tpl *t, const char *const vals[NOTIFY_PH_COUNT], int with_subject)
{
    char *subject = NULL, *body = NULL;
    if (notify_tpl_render(t, vals, with_subject ? &subject : NULL, &body) != 0) return;
    check(body != NULL);
    size_t n = strlen(body);
    if (n > 0) {
        check(body[n - 1] == '\n');
        check(body[0] != '\n');
    }
    if (with_subject) {
        check(subject != NULL);
        for (const unsigned char *p = (const unsigned char *)subject; *p; p++) check(*p >= 0x20 && *p != 0x7F);
    }
    free(subject);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    notify_kind kind = (notify_kind)(data[0] % NOTIFY_KIND_COUNT);
    int with_subject = (data[0] >> 2) & 1;
    char err[512] = "";
    notify_tpl *t = notify_tpl_parse("fuzz.txt", (const char *)data + 1, size - 1, kind, with_subject, err,
                                     sizeof err);
    if (!t) {
        check(strncmp(err, "fuzz.txt", 8) == 0);
        check(strlen(err) > 9);
        return 0;
    }
    const char *all[NOTIFY_PH_COUNT], *none[NOTIFY_PH_COUNT] = { 0 }, *odd[NOTIFY_PH_COUNT];
    for (int i = 0; i < NOTIFY_PH_COUNT; i++) {
        all[i] = notify_ph_name((notify_ph)i);
        odd[i] = (i % 2) ? "{{number}}\nline\r\nnext }}" : "";
    }
    render_and_check(t, all, with_subject);
    render_and_check(t, none, with_subject);
    render_and_check(t, odd, with_subject);
    notify_tpl_free(t);
    return 0;
}
