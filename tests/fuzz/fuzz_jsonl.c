/*
 * fuzz_jsonl.c - libFuzzer target over the JSON line record parser of
 * connectors/file/file_jsonl.c and the JSON pointers of hub/jsonptr.c (used
 * by the file and kafka sources on outside input).
 *
 * Input: a JSON lines file. Each line goes through file_jsonl_parse(); what
 * it accepts must be an object no deeper than FILE_JSON_MAX_DEPTH; every
 * member name found is then looked up again through a JSON pointer built
 * from it (escaping '~' and '/'), which must find the same value, and
 * relais_json_pointer_field() must either give a text or refuse with a reason.
 * Seeds: tests/fuzz/corpus/jsonl/.
 *
 * Build and run by hand (needs file_jsonl.c, hub/jsonptr.c, hub/safeparse.c, jansson, libxml2):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ihub -Iconnectors/file $(pkg-config --cflags libxml-2.0) \
 *     tests/fuzz/fuzz_jsonl.c connectors/file/file_jsonl.c hub/jsonptr.c hub/safeparse.c -ljansson -lxml2 -o fuzz_jsonl
 *   ./fuzz_jsonl -max_total_time=60 tests/fuzz/corpus/jsonl/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "../../connectors/file/file_jsonl.h"
#include "jsonptr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond)
        abort();
}

static size_t depth(json_t *v)
{
    size_t d = 0;
    if (json_is_object(v)) {
        const char *k;
        json_t *x;
        json_object_foreach(v, k, x) {
            size_t dx = depth(x);
            if (dx > d)
                d = dx;
        }
        return d + 1;
    }
    if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            size_t dx = depth(x);
            if (dx > d)
                d = dx;
        }
        return d + 1;
    }
    return 0;
}

/* "/" + key with ~ -> ~0 and / -> ~1; 0 when it does not fit. */
static int pointer_to(const char *key, char *buf, size_t len)
{
    size_t n = 0;
    if (len < 2)
        return 0;
    buf[n++] = '/';
    for (const char *p = key; *p; p++) {
        const char *rep = *p == '~' ? "~0" : *p == '/' ? "~1" : NULL;
        size_t add = rep ? 2 : 1;
        if (n + add >= len)
            return 0;
        if (rep) {
            memcpy(buf + n, rep, 2);
        } else {
            buf[n] = *p;
        }
        n += add;
    }
    buf[n] = '\0';
    return 1;
}

static void one_line(const char *line, size_t len)
{
    char err[300];
    json_t *o = file_jsonl_parse(line, len, err, sizeof err);
    if (!o) {
        check(err[0] != '\0');
        return;
    }
    check(json_is_object(o));
    check(depth(o) <= FILE_JSON_MAX_DEPTH);
    check(relais_json_pointer(o, "") == o);
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v) {
        char ptr[300], buf[64];
        const char *out = NULL;
        if (!pointer_to(k, ptr, sizeof ptr))
            continue;
        check(relais_json_pointer(o, ptr) == v);
        int rc = relais_json_pointer_field(o, ptr, "record_id_field", buf, sizeof buf, &out, err,
                                           sizeof err);
        if (rc != 0)
            check(err[0] != '\0' && out == NULL);
        else if (out)
            check(strlen(out) < sizeof buf);
        /* One level down, when it is an array or object. */
        char sub[320];
        snprintf(sub, sizeof sub, "%s/0", ptr);
        (void)relais_json_pointer(o, sub);
    }
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    size_t start = 0;
    for (size_t i = 0; i <= size; i++) {
        if (i == size || p[i] == '\n') {
            size_t n = i - start;
            if (n > 0 && p[start + n - 1] == '\r')
                n--;
            one_line(p + start, n);
            start = i + 1;
        }
    }
    /* The whole input as one record too (embedded newlines are whitespace). */
    one_line(p, size);
    return 0;
}
