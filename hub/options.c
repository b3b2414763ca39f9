/*
 * options.c - apply an option table (relais_option[], connector.h) to a YAML
 * map, filling a config struct at each option's offset (options.h).
 *
 * The table is the single source of truth: parsing, type checks, defaults,
 * required options, enum values, mode applicability, secrets, pass-through
 * prefixes, the "known options" list of error messages, and the JSON given to
 * `relais connectors describe` all come from it.
 *
 * Value syntax (also in docs/CONFIG.md):
 *   BOOL      true/false, yes/no, on/off, 1/0 (any case)
 *   DURATION  a whole number with an optional unit: ms, s, m, h; no unit = ms
 *   SIZE      a whole number with an optional unit: B, K/KB/KiB, M/MB/MiB,
 *             G/GB/GiB (any case); every multiple is a power of 1024
 *   SECRET    env:NAME (the variable must be set and not empty) or
 *             file:/path (a regular file of at most 64 KiB, trailing newlines
 *             removed); a secret's value never appears in any message
 *
 * Stateless; no threads. Messages go to the caller's relais_errlist.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "options.h"
#include "config.h"

#define SECRET_FILE_MAX (64 * 1024)
#define ECHO_MAX 60   /* at most this much of a bad value is quoted back */

#define FIELD(cfg, off, T) ((T *)(void *)((char *)(cfg) + (off)))

/* ---- value parsers -------------------------------------------------------- */

static const char *skip_space(const char *s)
{
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* A whole, non-negative number at the start of s; *end after it. */
static int parse_whole(const char *s, long *out, const char **end)
{
    if (!isdigit((unsigned char)*s)) return -1;
    long v = 0;
    while (isdigit((unsigned char)*s)) {
        int d = *s - '0';
        if (v > (LONG_MAX - d) / 10) return -1;
        v = v * 10 + d;
        s++;
    }
    *out = v;
    *end = s;
    return 0;
}

/* Number + unit: the unit (trimmed) must be one of `units`, each with its
 * multiplier. */
typedef struct { const char *unit; long mult; } unit_mult;

static int parse_with_units(const char *s, const unit_mult *units, long *out)
{
    if (!s) return -1;
    const char *p = skip_space(s), *end;
    long v;
    if (parse_whole(p, &v, &end) != 0) return -1;
    p = skip_space(end);
    size_t ulen = strlen(p);
    while (ulen > 0 && isspace((unsigned char)p[ulen - 1])) ulen--;
    for (const unit_mult *u = units; u->unit; u++) {
        if (strlen(u->unit) == ulen && strncasecmp(p, u->unit, ulen) == 0) {
            if (v > LONG_MAX / u->mult) return -1;
            *out = v * u->mult;
            return 0;
        }
    }
    return -1;
}

int relais_parse_duration_ms(const char *s, long *out)
{
    static const unit_mult units[] = {
        {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000L}, {"h", 3600 * 1000L}, {NULL, 0}
    };
    return parse_with_units(s, units, out);
}

int relais_parse_size(const char *s, long *out)
{
    static const unit_mult units[] = {
        {"", 1}, {"b", 1},
        {"k", 1L << 10}, {"kb", 1L << 10}, {"kib", 1L << 10},
        {"m", 1L << 20}, {"mb", 1L << 20}, {"mib", 1L << 20},
        {"g", 1L << 30}, {"gb", 1L << 30}, {"gib", 1L << 30},
        {NULL, 0}
    };
    return parse_with_units(s, units, out);
}

int relais_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1", NULL};
    static const char *const no[] = {"false", "no", "off", "0", NULL};
    if (!s) return -1;
    for (int i = 0; yes[i]; i++)
        if (strcasecmp(s, yes[i]) == 0) { *out = 1; return 0; }
    for (int i = 0; no[i]; i++)
        if (strcasecmp(s, no[i]) == 0) { *out = 0; return 0; }
    return -1;
}

static int parse_long(const char *s, long *out)
{
    if (!s) return -1;
    const char *p = skip_space(s);
    if (!*p) return -1;
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (errno == ERANGE || end == p) return -1;
    if (*skip_space(end)) return -1;
    *out = v;
    return 0;
}

/* ---- secrets -------------------------------------------------------------- */

static void wipe_free(char *s)
{
    if (!s) return;
    explicit_bzero(s, strlen(s));
    free(s);
}

static int read_secret_file(const char *path, char **out, char *errstr, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(errstr, errlen, "cannot open secret file %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        snprintf(errstr, errlen, "secret file %s is not a regular file", path);
        return -1;
    }
    char *buf = malloc(SECRET_FILE_MAX + 1);
    if (!buf) {
        close(fd);
        snprintf(errstr, errlen, "out of memory reading secret file %s", path);
        return -1;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, SECRET_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            explicit_bzero(buf, len);
            free(buf);
            snprintf(errstr, errlen, "cannot read secret file %s: %s", path, strerror(e));
            return -1;
        }
        if (n == 0) break;
        len += (size_t)n;
        if (len > SECRET_FILE_MAX) break;
    }
    close(fd);
    const char *why = NULL;
    if (len > SECRET_FILE_MAX) why = "is larger than 64 KiB";
    else if (memchr(buf, '\0', len)) why = "contains a NUL byte";
    if (why) {
        explicit_bzero(buf, len);
        free(buf);
        snprintf(errstr, errlen, "secret file %s %s", path, why);
        return -1;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r')) len--;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

int relais_resolve_secret(const char *spec, char **out, char *errstr, size_t errlen)
{
    char dummy[8];
    if (!errstr || !errlen) {
        errstr = dummy;
        errlen = sizeof dummy;
    }
    errstr[0] = '\0';
    *out = NULL;
    if (spec && strncmp(spec, "env:", 4) == 0) {
        const char *name = spec + 4;
        if (!*name) {
            snprintf(errstr, errlen, "env: needs a variable name (env:NAME)");
            return -1;
        }
        const char *v = getenv(name);
        if (!v) {
            snprintf(errstr, errlen, "environment variable %.200s is not set", name);
            return -1;
        }
        if (!*v) {
            snprintf(errstr, errlen, "environment variable %.200s is empty", name);
            return -1;
        }
        *out = strdup(v);
        if (!*out) {
            snprintf(errstr, errlen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (spec && strncmp(spec, "file:", 5) == 0) {
        if (!spec[5]) {
            snprintf(errstr, errlen, "file: needs a path (file:/path/to/secret)");
            return -1;
        }
        return read_secret_file(spec + 5, out, errstr, errlen);
    }
    /* Never quote the spec: it may be the secret itself, typed in place. */
    snprintf(errstr, errlen, "secrets must be given as env:NAME or file:PATH");
    return -1;
}

/* ---- applying a table ----------------------------------------------------- */

typedef struct apply_ctx {
    const relais_option *tbl;
    const char          *file;
    relais_errlist      *errs;
    int                  nerr;
} apply_ctx;

static void add_err(apply_ctx *a, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_err(apply_ctx *a, int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    relais_errlist_add(a->errs, a->file ? a->file : "<config>", line, "%s", msg);
    a->nerr++;
}

static const char *type_name(relais_opt_type t)
{
    switch (t) {
    case RELAIS_OPT_STR:      return "string";
    case RELAIS_OPT_INT:      return "int";
    case RELAIS_OPT_BOOL:     return "bool";
    case RELAIS_OPT_DURATION: return "duration";
    case RELAIS_OPT_SIZE:     return "size";
    case RELAIS_OPT_SECRET:   return "secret";
    case RELAIS_OPT_ENUM:     return "enum";
    case RELAIS_OPT_STRLIST:  return "strlist";
    case RELAIS_OPT_PREFIX:   return "prefix";
    case RELAIS_OPT_URL:      return "url";
    }
    return "unknown";
}

static const char *type_expect(relais_opt_type t)
{
    switch (t) {
    case RELAIS_OPT_INT:      return "a whole number";
    case RELAIS_OPT_BOOL:     return "a boolean (true/false, yes/no, on/off, 1/0)";
    case RELAIS_OPT_DURATION: return "a duration such as 250ms, 5s, 2m, 1h (no unit: ms)";
    case RELAIS_OPT_SIZE:     return "a size such as 512, 64KB, 10MB, 1GB (KB = 1024 bytes)";
    default:                  return "a string";
    }
}

static int enum_has(const char *values, const char *v)
{
    size_t vl = strlen(v);
    const char *p = values;
    while (p && *p) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == vl && strncmp(p, v, n) == 0) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

/* "a|b|c" -> "a, b, c" */
static void enum_list(const char *values, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (const char *p = values ? values : ""; *p && o + 3 < len; p++) {
        if (*p == '|') {
            buf[o++] = ',';
            buf[o++] = ' ';
        } else {
            buf[o++] = *p;
        }
    }
    buf[o < len ? o : len - 1] = '\0';
}

static void strlist_free(char **l)
{
    if (!l) return;
    for (char **p = l; *p; p++) free(*p);
    free(l);
}

char **relais_split_list(const char *s)
{
    size_t n = 1;
    for (const char *p = s; *p; p++)
        if (*p == ',') n++;
    char **l = calloc(n + 1, sizeof *l);
    if (!l) return NULL;
    size_t k = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        const char *b = p;
        while (b < e && isspace((unsigned char)*b)) b++;
        while (e > b && isspace((unsigned char)e[-1])) e--;
        if (e > b) {
            l[k] = strndup(b, (size_t)(e - b));
            if (!l[k]) {
                strlist_free(l);
                return NULL;
            }
            k++;
        }
        if (!comma) break;
        p = comma + 1;
    }
    return l;
}

/* Set one option from text (a scalar or a default). `what` is "option 'x'"
 * or "default of option 'x'". Returns 0 or -1 (error added). */
static int set_from_text(apply_ctx *a, const relais_option *o, void *cfg, const char *text,
                         int line, const char *what)
{
    char errbuf[512];
    switch (o->type) {
    case RELAIS_OPT_STR:
    case RELAIS_OPT_URL: {
        char *s = strdup(text);
        if (!s) { add_err(a, line, "out of memory"); return -1; }
        *FIELD(cfg, o->offset, char *) = s;
        return 0;
    }
    case RELAIS_OPT_ENUM: {
        if (!enum_has(o->enum_values, text)) {
            char list[512];
            enum_list(o->enum_values, list, sizeof list);
            add_err(a, line, "%s must be one of %s (got '%.*s')", what, list, ECHO_MAX, text);
            return -1;
        }
        char *s = strdup(text);
        if (!s) { add_err(a, line, "out of memory"); return -1; }
        *FIELD(cfg, o->offset, char *) = s;
        return 0;
    }
    case RELAIS_OPT_INT:
    case RELAIS_OPT_DURATION:
    case RELAIS_OPT_SIZE: {
        long v;
        int rc = o->type == RELAIS_OPT_INT        ? parse_long(text, &v)
                 : o->type == RELAIS_OPT_DURATION ? relais_parse_duration_ms(text, &v)
                                                  : relais_parse_size(text, &v);
        if (rc != 0) {
            add_err(a, line, "%s must be %s (got '%.*s')", what, type_expect(o->type), ECHO_MAX,
                    text);
            return -1;
        }
        *FIELD(cfg, o->offset, long) = v;
        return 0;
    }
    case RELAIS_OPT_BOOL: {
        int v;
        if (relais_parse_bool(text, &v) != 0) {
            add_err(a, line, "%s must be %s (got '%.*s')", what, type_expect(o->type), ECHO_MAX,
                    text);
            return -1;
        }
        *FIELD(cfg, o->offset, int) = v;
        return 0;
    }
    case RELAIS_OPT_SECRET: {
        char *s;
        if (relais_resolve_secret(text, &s, errbuf, sizeof errbuf) != 0) {
            add_err(a, line, "%s: %s", what, errbuf);
            return -1;
        }
        *FIELD(cfg, o->offset, char *) = s;
        return 0;
    }
    case RELAIS_OPT_STRLIST: {
        char **l = relais_split_list(text);
        if (!l) { add_err(a, line, "out of memory"); return -1; }
        *FIELD(cfg, o->offset, char **) = l;
        return 0;
    }
    case RELAIS_OPT_PREFIX:
        return 0;   /* filled key by key, never from text */
    }
    add_err(a, line, "%s has an unknown type in the option table", what);
    return -1;
}

static int set_from_node(apply_ctx *a, const relais_option *o, void *cfg, const yt_node *v,
                         int line)
{
    char what[160];
    snprintf(what, sizeof what, "option '%s'", o->name);
    if (o->type == RELAIS_OPT_STRLIST && v->kind == YT_SEQ) {
        char **l = calloc(v->count + 1, sizeof *l);
        if (!l) { add_err(a, line, "out of memory"); return -1; }
        for (size_t i = 0; i < v->count; i++) {
            if (v->values[i]->kind != YT_SCALAR) {
                add_err(a, v->values[i]->line, "%s: list items must be plain values, not %s",
                        what, v->values[i]->kind == YT_MAP ? "maps" : "lists");
                strlist_free(l);
                return -1;
            }
            l[i] = strdup(v->values[i]->scalar);
            if (!l[i]) {
                strlist_free(l);
                add_err(a, line, "out of memory");
                return -1;
            }
        }
        *FIELD(cfg, o->offset, char **) = l;
        return 0;
    }
    if (v->kind != YT_SCALAR) {
        add_err(a, line, "%s must be %s%s, not a %s", what, type_expect(o->type),
                o->type == RELAIS_OPT_STRLIST ? " or a list" : "",
                v->kind == YT_MAP ? "map" : "list");
        return -1;
    }
    return set_from_text(a, o, cfg, v->scalar, line, what);
}

static int kv_append(relais_kv **head, const char *key, const char *value)
{
    relais_kv *kv = calloc(1, sizeof *kv);
    if (!kv) return -1;
    kv->key = strdup(key);
    kv->value = strdup(value);
    if (!kv->key || !kv->value) {
        free(kv->key);
        free(kv->value);
        free(kv);
        return -1;
    }
    while (*head) head = &(*head)->next;
    *head = kv;
    return 0;
}

/* An unquoted empty value, "~" or "null": the key is there without a value. */
static int is_null(const yt_node *v)
{
    if (v->kind != YT_SCALAR || v->quoted) return 0;
    return !v->scalar[0] || strcmp(v->scalar, "~") == 0 || strcasecmp(v->scalar, "null") == 0;
}

static int in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0) return 1;
    return 0;
}

/* The option a key names: an exact name, else the longest PREFIX option the
 * key starts with. */
static const relais_option *find_option(const relais_option *tbl, const char *key)
{
    const relais_option *best = NULL;
    for (const relais_option *o = tbl; o && o->name; o++) {
        if (o->type == RELAIS_OPT_PREFIX) {
            size_t n = strlen(o->name);
            if (strncmp(key, o->name, n) == 0 && (!best || n > strlen(best->name)))
                best = o;
        } else if (strcmp(o->name, key) == 0) {
            return o;
        }
    }
    return best;
}

/* The connector type whose descriptor owns this table, for messages. */
static const char *table_owner(const relais_option *tbl)
{
    size_t n = 0;
    const relais_connector *const *all = relais_registry_all(&n);
    for (size_t i = 0; i < n; i++)
        if (all[i] && all[i]->options == tbl) return all[i]->name;
    return NULL;
}

static void known_list(const relais_option *tbl, const char *const *skip, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; skip && skip[i] && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", skip[i]);
    for (const relais_option *p = tbl; p && p->name && o < len; p++)
        o += (size_t)snprintf(buf + o, len - o, "%s%s%s", o ? ", " : "", p->name,
                              p->type == RELAIS_OPT_PREFIX ? "*" : "");
}

static const char *modes_text(unsigned modes)
{
    if (modes == RELAIS_MODE_SINK) return "sink instances";
    if (modes == RELAIS_MODE_SOURCE) return "source instances";
    return "other instances";
}

int relais_options_apply(const relais_option *tbl, void *cfg, unsigned mode,
                         const yt_node *map, const char *const *skip,
                         const char *file, relais_errlist *errs)
{
    apply_ctx a = { tbl, file, errs, 0 };
    size_t n = 0;
    for (const relais_option *o = tbl; o && o->name; o++) n++;
    unsigned char *seen = calloc(n + 1, 1);
    if (!seen) {
        add_err(&a, map ? map->line : 0, "out of memory");
        return -1;
    }
    int map_line = map ? map->line : 0;
    if (map && map->kind != YT_MAP) {
        add_err(&a, map_line, "expected a map of options, got a %s",
                map->kind == YT_SEQ ? "list" : "plain value");
        map = NULL;
    }

    for (size_t i = 0; map && i < map->count; i++) {
        const char *key = map->keys[i];
        int line = map->key_lines[i];
        if (in_list(skip, key)) continue;
        const relais_option *o = find_option(tbl, key);
        if (!o) {
            char known[1024];
            known_list(tbl, skip, known, sizeof known);
            const char *owner = table_owner(tbl);
            if (owner)
                add_err(&a, line, "unknown option '%.100s' for connector type '%s'; known options: %s",
                        key, owner, known);
            else
                add_err(&a, line, "unknown option '%.100s'; known options: %s", key, known);
            continue;
        }
        seen[o - tbl] = 1;
        if (mode && o->modes && !(o->modes & mode)) {
            add_err(&a, line, "option '%s' applies only to %s", key, modes_text(o->modes));
            continue;
        }
        const yt_node *v = map->values[i];
        if (is_null(v) && o->type != RELAIS_OPT_PREFIX) {
            /* Same as absent: the default applies; a required option is missing. */
            if (o->required)
                add_err(&a, line, "option '%s' has no value", key);
            else
                seen[o - tbl] = 0;
            continue;
        }
        if (o->type == RELAIS_OPT_PREFIX) {
            const char *sub = key + strlen(o->name);
            if (!*sub) {
                add_err(&a, line, "option '%s' needs a property name after the prefix "
                        "(%sPROPERTY: value)", key, o->name);
            } else if (v->kind != YT_SCALAR) {
                add_err(&a, line, "option '%.100s' must be a plain value, not a %s", key,
                        v->kind == YT_MAP ? "map" : "list");
            } else if (kv_append(FIELD(cfg, o->offset, relais_kv *), sub, v->scalar) != 0) {
                add_err(&a, line, "out of memory");
            }
            continue;
        }
        set_from_node(&a, o, cfg, v, line);
    }

    for (const relais_option *o = tbl; o && o->name; o++) {
        if (seen[o - tbl] || o->type == RELAIS_OPT_PREFIX) continue;
        int applies = !o->modes || !mode || (o->modes & mode);
        if (o->required) {
            /* RELAIS_OPT_UNLESS_MAPPED: the instance's mapping supplies it */
            if (o->required == RELAIS_OPT_UNLESS_MAPPED && yt_get(map, "mapping")) continue;
            if (applies && (!o->modes || mode))
                add_err(&a, map_line, "missing required option '%s'%s", o->name,
                        o->required == RELAIS_OPT_UNLESS_MAPPED ? " (or a mapping: that gives it)" : "");
            continue;
        }
        if (o->def) {
            char what[160];
            snprintf(what, sizeof what, "default of option '%s'", o->name);
            set_from_text(&a, o, cfg, o->def, map_line, what);
        }
    }
    free(seen);
    return a.nerr ? -1 : 0;
}

void relais_options_free(const relais_option *tbl, void *cfg)
{
    if (!cfg) return;
    for (const relais_option *o = tbl; o && o->name; o++) {
        switch (o->type) {
        case RELAIS_OPT_STR:
        case RELAIS_OPT_URL:
        case RELAIS_OPT_ENUM: {
            char **p = FIELD(cfg, o->offset, char *);
            free(*p);
            *p = NULL;
            break;
        }
        case RELAIS_OPT_SECRET: {
            char **p = FIELD(cfg, o->offset, char *);
            wipe_free(*p);
            *p = NULL;
            break;
        }
        case RELAIS_OPT_STRLIST: {
            char ***p = FIELD(cfg, o->offset, char **);
            strlist_free(*p);
            *p = NULL;
            break;
        }
        case RELAIS_OPT_PREFIX: {
            relais_kv **p = FIELD(cfg, o->offset, relais_kv *);
            relais_kv *kv = *p;
            while (kv) {
                relais_kv *next = kv->next;
                free(kv->key);
                free(kv->value);
                free(kv);
                kv = next;
            }
            *p = NULL;
            break;
        }
        case RELAIS_OPT_INT:
        case RELAIS_OPT_BOOL:
        case RELAIS_OPT_DURATION:
        case RELAIS_OPT_SIZE:
            break;
        }
    }
}

json_t *relais_options_describe(const relais_option *tbl)
{
    json_t *arr = json_array();
    if (!arr) return NULL;
    for (const relais_option *o = tbl; o && o->name; o++) {
        json_t *modes = json_array();
        if (!o->modes || (o->modes & RELAIS_MODE_SOURCE)) json_array_append_new(modes, json_string("source"));
        if (!o->modes || (o->modes & RELAIS_MODE_SINK)) json_array_append_new(modes, json_string("sink"));
        json_t *en = json_null();
        if (o->type == RELAIS_OPT_ENUM && o->enum_values) {
            en = json_array();
            const char *p = o->enum_values;
            while (p && *p) {
                const char *bar = strchr(p, '|');
                size_t n = bar ? (size_t)(bar - p) : strlen(p);
                json_array_append_new(en, json_stringn(p, n));
                p = bar ? bar + 1 : NULL;
            }
        }
        json_t *obj = json_pack("{s:s, s:s, s:o, s:b, s:o, s:s, s:o}",
                                "name", o->name,
                                "type", type_name(o->type),
                                "default", o->def && !o->required ? json_string(o->def) : json_null(),
                                "required", o->required ? 1 : 0,
                                "enum", en,
                                "desc", o->desc ? o->desc : "",
                                "modes", modes);
        if (!obj || json_array_append_new(arr, obj) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}
