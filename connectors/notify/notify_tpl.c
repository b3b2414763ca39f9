/*
 * notify_tpl.c - message templates of the notify connector.
 *
 * A template is UTF-8 text with {{placeholder}} fields. Email templates
 * (request.<verb>.txt) start with a "Subject: ..." line; SMS templates
 * (request.<verb>.sms.txt) are the text alone. A line whose placeholders all
 * have no value is left out when rendering, so optional facts (a deadline,
 * an address) need no conditional syntax. Parsing is pure and checks
 * everything at load: unknown placeholders, placeholders that the event type
 * does not carry, unbalanced braces, invalid UTF-8, each with the file and
 * the line. Fuzzed by tests/fuzz/fuzz_notify_template.c.
 *
 * No threads here: a parsed template is immutable and may be rendered by any
 * number of delivery workers at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "notify_int.h"

static const char *const ph_names[NOTIFY_PH_COUNT] = {
    [NOTIFY_PH_NUMBER] = "number",
    [NOTIFY_PH_STATUS_LABEL] = "status_label",
    [NOTIFY_PH_CATEGORY] = "category",
    [NOTIFY_PH_TITLE] = "title",
    [NOTIFY_PH_ADDRESS] = "address",
    [NOTIFY_PH_TOWN] = "town",
    [NOTIFY_PH_DATE] = "date",
    [NOTIFY_PH_DEADLINE] = "deadline",
    [NOTIFY_PH_COMMENT] = "comment",
    [NOTIFY_PH_ANSWER] = "answer",
    [NOTIFY_PH_OUTCOME_LABEL] = "outcome_label",
};

#define BIT(p) (1u << (p))
#define COMMON_PH (BIT(NOTIFY_PH_NUMBER) | BIT(NOTIFY_PH_STATUS_LABEL) | BIT(NOTIFY_PH_CATEGORY) \
                   | BIT(NOTIFY_PH_TITLE) | BIT(NOTIFY_PH_ADDRESS) | BIT(NOTIFY_PH_TOWN)        \
                   | BIT(NOTIFY_PH_DATE))

static const struct {
    const char *name;     /* event type without namespace and version */
    const char *file;     /* template base name */
    unsigned    allowed;
} kinds[NOTIFY_KIND_COUNT] = {
    [NOTIFY_CREATED] = { "grc.request.created", "request.created", COMMON_PH | BIT(NOTIFY_PH_DEADLINE) },
    [NOTIFY_UPDATED] = { "grc.request.updated", "request.updated", COMMON_PH | BIT(NOTIFY_PH_COMMENT) },
    [NOTIFY_CLOSED]  = { "grc.request.closed", "request.closed",
                         COMMON_PH | BIT(NOTIFY_PH_ANSWER) | BIT(NOTIFY_PH_OUTCOME_LABEL) },
};

const char *notify_ph_name(notify_ph ph)
{
    return (unsigned)ph < NOTIFY_PH_COUNT ? ph_names[ph] : "?";
}

unsigned notify_kind_placeholders(notify_kind k)
{
    return (unsigned)k < NOTIFY_KIND_COUNT ? kinds[k].allowed : 0;
}

const char *notify_kind_name(notify_kind k)
{
    return (unsigned)k < NOTIFY_KIND_COUNT ? kinds[k].name : "?";
}

int notify_kind_of_type(const char *type, notify_kind *out)
{
    if (!type) return -1;
    const char *p = strstr(type, "grc.request.");
    /* the segment must start the type or follow a dot */
    while (p && p != type && p[-1] != '.') p = strstr(p + 1, "grc.request.");
    if (!p) return -1;
    for (int k = 0; k < NOTIFY_KIND_COUNT; k++) {
        size_t n = strlen(kinds[k].name);
        if (strncmp(p, kinds[k].name, n) != 0) continue;
        const char *rest = p + n;
        if (*rest == '\0') {
            *out = (notify_kind)k;
            return 0;
        }
        /* a version suffix ".v1" */
        if (rest[0] == '.' && rest[1] == 'v' && rest[2]) {
            const char *d = rest + 2;
            while (*d >= '0' && *d <= '9') d++;
            if (*d == '\0') {
                *out = (notify_kind)k;
                return 0;
            }
        }
    }
    return -1;
}

/* ---- Parsed form ------------------------------------------------------------- */

typedef struct seg {
    int    ph;       /* -1: literal */
    size_t off, len; /* literal: bytes of t->text */
} seg;

typedef struct tline {
    size_t first, n; /* segments [first, first + n) */
    int    has_ph;
} tline;

struct notify_tpl {
    char   *text;    /* copy of the template text */
    seg    *segs;
    size_t  nsegs, capsegs;
    tline  *lines;   /* body lines */
    size_t  nlines, caplines;
    int     with_subject;
    tline   subject;
};

static int add_seg(notify_tpl *t, int ph, size_t off, size_t len)
{
    if (t->nsegs == t->capsegs) {
        size_t nc = t->capsegs ? t->capsegs * 2 : 16;
        seg *ns = realloc(t->segs, nc * sizeof *ns);
        if (!ns) return -1;
        t->segs = ns;
        t->capsegs = nc;
    }
    t->segs[t->nsegs++] = (seg){ ph, off, len };
    return 0;
}

static int add_line(notify_tpl *t, tline l)
{
    if (t->nlines == t->caplines) {
        size_t nc = t->caplines ? t->caplines * 2 : 16;
        tline *nl = realloc(t->lines, nc * sizeof *nl);
        if (!nl) return -1;
        t->lines = nl;
        t->caplines = nc;
    }
    t->lines[t->nlines++] = l;
    return 0;
}

void notify_tpl_free(notify_tpl *t)
{
    if (!t) return;
    free(t->text);
    free(t->segs);
    free(t->lines);
    free(t);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 when invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; min = 0x10000; }
    else return 0;
    if (n < need) return 0;
    unsigned cp = c & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return need;
}

static void known_list(char *buf, size_t len, unsigned mask)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < NOTIFY_PH_COUNT; i++) {
        if (!(mask & BIT(i))) continue;
        int w = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", ph_names[i]);
        if (w < 0 || (size_t)w >= len - used) break;
        used += (size_t)w;
    }
}

/* Parse the segments of one line [off, end) of t->text into *l. */
static int parse_line(notify_tpl *t, const char *name, int lineno, size_t off, size_t end,
                      notify_kind kind, tline *l, char *err, size_t errlen)
{
    const char *s = t->text;
    l->first = t->nsegs;
    l->n = 0;
    l->has_ph = 0;
    size_t lit = off, i = off;
    while (i < end) {
        if (!(s[i] == '{' && i + 1 < end && s[i + 1] == '{')) {
            i++;
            continue;
        }
        if (i > lit) {
            if (add_seg(t, -1, lit, i - lit) != 0) goto oom;
            l->n++;
        }
        size_t j = i + 2;
        while (j + 1 < end && !(s[j] == '}' && s[j + 1] == '}')) j++;
        if (j + 1 >= end) {
            snprintf(err, errlen, "%s:%d: '{{' without '}}' on the same line", name, lineno);
            return -1;
        }
        size_t a = i + 2, b = j;
        while (a < b && (s[a] == ' ' || s[a] == '\t')) a++;
        while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) b--;
        int ph = -1;
        for (int k = 0; k < NOTIFY_PH_COUNT; k++)
            if (strlen(ph_names[k]) == b - a && memcmp(ph_names[k], s + a, b - a) == 0) ph = k;
        char shown[48];
        size_t sl = b - a < 40 ? b - a : 40;
        size_t o = 0;
        for (size_t k = 0; k < sl; k++) {
            unsigned char ch = (unsigned char)s[a + k];
            shown[o++] = (ch >= 0x20 && ch < 0x7F) ? (char)ch : '?';
        }
        shown[o] = '\0';
        char list[256];
        if (ph < 0) {
            known_list(list, sizeof list, (1u << NOTIFY_PH_COUNT) - 1);
            snprintf(err, errlen, "%s:%d: unknown placeholder {{%s%s}} (known: %s)", name, lineno,
                     shown, b - a > sl ? "..." : "", list);
            return -1;
        }
        if (!(kinds[kind].allowed & BIT(ph))) {
            known_list(list, sizeof list, kinds[kind].allowed);
            snprintf(err, errlen, "%s:%d: {{%s}} is not available for %s (available: %s)", name,
                     lineno, shown, kinds[kind].name, list);
            return -1;
        }
        if (add_seg(t, ph, 0, 0) != 0) goto oom;
        l->n++;
        l->has_ph = 1;
        i = j + 2;
        lit = i;
    }
    if (end > lit) {
        if (add_seg(t, -1, lit, end - lit) != 0) goto oom;
        l->n++;
    }
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", name);
    return -1;
}

notify_tpl *notify_tpl_parse(const char *name, const char *text, size_t len, notify_kind kind,
                             int with_subject, char *err, size_t errlen)
{
    if ((unsigned)kind >= NOTIFY_KIND_COUNT) {
        snprintf(err, errlen, "%s: unknown event kind", name);
        return NULL;
    }
    if (len > NOTIFY_TPL_MAX) {
        snprintf(err, errlen, "%s: larger than %d bytes", name, NOTIFY_TPL_MAX);
        return NULL;
    }
    /* UTF-8, no NUL, no control characters but tab, CR and LF */
    int lineno = 1;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') lineno++;
        if ((c < 0x20 && c != '\n' && c != '\r' && c != '\t') || c == 0x7F) {
            snprintf(err, errlen, "%s:%d: control character 0x%02X", name, lineno, c);
            return NULL;
        }
        size_t n = utf8_len((const unsigned char *)text + i, len - i);
        if (n == 0) {
            snprintf(err, errlen, "%s:%d: invalid UTF-8", name, lineno);
            return NULL;
        }
        i += n;
    }
    notify_tpl *t = calloc(1, sizeof *t);
    if (!t || !(t->text = malloc(len + 1))) {
        free(t);
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    memcpy(t->text, text, len);
    t->text[len] = '\0';
    t->with_subject = with_subject;

    size_t pos = 0;
    lineno = 0;
    int saw_subject = 0;
    while (pos < len) {
        lineno++;
        size_t end = pos;
        while (end < len && text[end] != '\n') end++;
        size_t next = end < len ? end + 1 : end;
        if (end > pos && text[end - 1] == '\r') end--;
        if (with_subject && !saw_subject) {
            static const char key[] = "Subject:";
            size_t kl = sizeof key - 1;
            if (end - pos < kl || strncasecmp(text + pos, key, kl) != 0) {
                snprintf(err, errlen, "%s:%d: the first line must be 'Subject: <text>'", name, lineno);
                goto fail;
            }
            size_t a = pos + kl;
            while (a < end && (text[a] == ' ' || text[a] == '\t')) a++;
            if (a == end) {
                snprintf(err, errlen, "%s:%d: empty subject", name, lineno);
                goto fail;
            }
            if (parse_line(t, name, lineno, a, end, kind, &t->subject, err, errlen) != 0) goto fail;
            saw_subject = 1;
        } else {
            tline l;
            if (parse_line(t, name, lineno, pos, end, kind, &l, err, errlen) != 0) goto fail;
            if (add_line(t, l) != 0) {
                snprintf(err, errlen, "%s: out of memory", name);
                goto fail;
            }
        }
        pos = next;
    }
    if (with_subject && !saw_subject) {
        snprintf(err, errlen, "%s:1: the first line must be 'Subject: <text>'", name);
        goto fail;
    }
    int nonblank = 0;
    for (size_t i = 0; i < t->nlines && !nonblank; i++) nonblank = t->lines[i].n > 0;
    if (!nonblank) {
        snprintf(err, errlen, "%s: no message text", name);
        goto fail;
    }
    return t;
fail:
    notify_tpl_free(t);
    return NULL;
}

static int present(const char *v)
{
    return v && *v;
}

/* Render one line into b; 0 when the line is left out (placeholders, all empty). */
static int render_line(const notify_tpl *t, const tline *l, const char *const vals[NOTIFY_PH_COUNT],
                       notify_buf *b)
{
    if (l->has_ph) {
        int any = 0;
        for (size_t i = 0; i < l->n && !any; i++) {
            const seg *s = &t->segs[l->first + i];
            any = s->ph >= 0 && present(vals[s->ph]);
        }
        if (!any) return 0;
    }
    for (size_t i = 0; i < l->n; i++) {
        const seg *s = &t->segs[l->first + i];
        if (s->ph < 0) notify_buf_add(b, t->text + s->off, s->len);
        else if (present(vals[s->ph])) notify_buf_adds(b, vals[s->ph]);
    }
    return 1;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

int notify_tpl_render(const notify_tpl *t, const char *const vals[NOTIFY_PH_COUNT], char **subject,
                      char **body)
{
    *body = NULL;
    if (subject) *subject = NULL;
    notify_buf b = { 0 };
    size_t keep = 0;          /* length up to the end of the last non-blank line */
    int started = 0;
    for (size_t i = 0; i < t->nlines; i++) {
        size_t before = b.len;
        if (!render_line(t, &t->lines[i], vals, &b)) continue;
        int is_blank = blank(b.p ? b.p + before : "", b.len - before);
        if (!started && is_blank) {
            b.len = before;   /* leading blank line dropped */
            continue;
        }
        started = 1;
        notify_buf_addc(&b, '\n');
        if (!is_blank) keep = b.len;
    }
    if (!b.oom && b.p) {
        b.len = keep;          /* trailing blank lines dropped */
        b.p[keep] = '\0';
    }
    char *out = notify_buf_take(&b, NULL);
    if (!out) return -1;
    if (t->with_subject && subject) {
        notify_buf sb = { 0 };
        render_line(t, &t->subject, vals, &sb);
        char *s = notify_buf_take(&sb, NULL);
        if (!s) {
            free(out);
            return -1;
        }
        for (char *p = s; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7F) *p = ' ';
        size_t n = strlen(s);
        while (n > 0 && s[n - 1] == ' ') s[--n] = '\0';
        *subject = s;
    }
    *body = out;
    return 0;
}

/* ---- Folders ----------------------------------------------------------------- */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(NOTIFY_TPL_MAX + 2);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    size_t n = fread(buf, 1, NOTIFY_TPL_MAX + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

void notify_templates_free(notify_templates *ts)
{
    if (!ts) return;
    for (int k = 0; k < NOTIFY_KIND_COUNT; k++) {
        notify_tpl_free(ts->email[k]);
        notify_tpl_free(ts->sms[k]);
        ts->email[k] = ts->sms[k] = NULL;
    }
}

int notify_templates_load(notify_templates *ts, const char *dir, char *err, size_t errlen)
{
    memset(ts, 0, sizeof *ts);
    for (int k = 0; k < NOTIFY_KIND_COUNT; k++) {
        for (int sms = 0; sms <= 1; sms++) {
            char path[4096];
            int w = snprintf(path, sizeof path, "%s/%s%s", dir, kinds[k].file, sms ? ".sms.txt" : ".txt");
            if (w < 0 || (size_t)w >= sizeof path) {
                snprintf(err, errlen, "templates folder name too long");
                notify_templates_free(ts);
                return -1;
            }
            size_t len = 0;
            char *text = read_file(path, &len, err, errlen);
            if (!text) {
                notify_templates_free(ts);
                return -1;
            }
            notify_tpl *t = notify_tpl_parse(path, text, len, (notify_kind)k, !sms, err, errlen);
            free(text);
            if (!t) {
                notify_templates_free(ts);
                return -1;
            }
            if (sms) ts->sms[k] = t;
            else ts->email[k] = t;
        }
    }
    return 0;
}
