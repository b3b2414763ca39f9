/*
 * sla.c - service-level report of citizens' requests (see sla.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sla.h"

static const char *sget(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* the per-category row of (tenant, category), created on first use */
static json_t *category_row(json_t *cats, const char *tenant, const char *category)
{
    size_t i;
    json_t *r;
    json_array_foreach(cats, i, r) {
        if (!strcmp(sget(r, "tenant"), tenant) && !strcmp(sget(r, "category"), category)) return r;
    }
    r = json_pack("{s:s,s:s,s:i,s:i,s:i,s:i}", "tenant", tenant, "category", category,
                  "open", 0, "overdue", 0, "closed", 0, "kept", 0);
    json_array_append_new(cats, r);
    return r;
}

static void bump(json_t *row, const char *k)
{
    json_object_set_new(row, k, json_integer(json_integer_value(json_object_get(row, k)) + 1));
}

static int by_late(const void *a, const void *b)
{
    json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "late_days"));
    json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "late_days"));
    return x < y ? 1 : x > y ? -1 : 0;
}

json_t *relais_sla_report(relais_journal *j, const char *tenant, relais_date from, relais_date to,
                          relais_date today, char *errstr, size_t errlen)
{
    json_t *all = relais_journal_state_scan(j, tenant, "sla/", errstr, errlen);
    if (!all) return NULL;
    json_t *overdue = json_array(), *cats = json_array();
    long lo = relais_date_days(from), hi = relais_date_days(to), now = relais_date_days(today);
    size_t i;
    json_t *e;
    json_array_foreach(all, i, e) {
        json_t *v = json_object_get(e, "value");
        const char *ten = sget(e, "tenant") ? sget(e, "tenant") : "";
        const char *cat = sget(v, "category") ? sget(v, "category") : "(none)";
        json_t *row = category_row(cats, ten, cat);
        relais_date deadline, closed;
        int has_deadline = relais_date_parse(sget(v, "deadline"), &deadline) == 0;
        if (!strcmp(sget(v, "status") ? sget(v, "status") : "", "closed")) {
            if (relais_date_parse(sget(v, "closed_day"), &closed) == 0 && relais_date_days(closed) >= lo
                && relais_date_days(closed) <= hi) {
                bump(row, "closed");
                if (json_is_true(json_object_get(v, "commitment_met"))) bump(row, "kept");
            }
            continue;
        }
        bump(row, "open");
        if (has_deadline && now > relais_date_days(deadline)) {
            bump(row, "overdue");
            json_array_append_new(overdue, json_pack("{s:s,s:s?,s:s,s:s?,s:s?,s:O?,s:I}",
                "tenant", ten, "subject", sget(v, "subject"), "category", cat,
                "opened_at", sget(v, "opened_at"), "deadline", sget(v, "deadline"),
                "commitment_days", json_object_get(v, "commitment_days"),
                "late_days", (json_int_t)relais_workdays_between(deadline, today, RELAIS_CAL_FR)));
        }
    }
    json_decref(all);
    /* most late first */
    size_t n = json_array_size(overdue);
    json_t **tmp = n ? calloc(n, sizeof *tmp) : NULL;
    if (tmp) {
        for (size_t k = 0; k < n; k++) tmp[k] = json_incref(json_array_get(overdue, k));
        qsort(tmp, n, sizeof *tmp, by_late);
        json_array_clear(overdue);
        for (size_t k = 0; k < n; k++) json_array_append_new(overdue, tmp[k]);
        free(tmp);
    }
    json_array_foreach(cats, i, e) {
        json_int_t closed = json_integer_value(json_object_get(e, "closed"));
        json_int_t kept = json_integer_value(json_object_get(e, "kept"));
        json_object_set_new(e, "share_kept", closed ? json_real((double)kept / (double)closed) : json_null());
    }
    char a[16], b[16], c[16];
    relais_date_format(today, a, sizeof a);
    relais_date_format(from, b, sizeof b);
    relais_date_format(to, c, sizeof c);
    return json_pack("{s:s,s:s,s:s,s:o,s:o}", "today", a, "from", b, "to", c, "overdue", overdue, "categories", cats);
}

/* Prometheus label value: backslash, quote and newline escaped */
static void label(char *out, size_t outlen, const char *v)
{
    size_t o = 0;
    for (; v && *v && o + 3 < outlen; v++) {
        if (*v == '\\' || *v == '"') { out[o++] = '\\'; out[o++] = *v; }
        else if (*v == '\n') { out[o++] = '\\'; out[o++] = 'n'; }
        else out[o++] = *v;
    }
    out[o] = '\0';
}

char *relais_sla_metrics(relais_journal *j, relais_date today)
{
    char err[256];
    relais_date from = relais_date_from_days(relais_date_days(today) - 29);
    json_t *r = relais_sla_report(j, NULL, from, today, today, err, sizeof err);
    if (!r) return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) { json_decref(r); return NULL; }
    buf[0] = '\0';
    static const char *const names[][2] = {
        { "open", "requests followed and not closed" },
        { "overdue", "open requests past their commitment (deadline in working days)" },
        { "closed", "requests closed in the last 30 days" },
        { "kept", "requests closed in the last 30 days within their commitment" },
    };
    for (int pass = 0; pass < 5; pass++) {
        const char *metric = pass < 4 ? names[pass][0] : "share_kept";
        char head[256];
        snprintf(head, sizeof head, "# HELP relais_sla_%s %s\n# TYPE relais_sla_%s gauge\n", metric,
                 pass < 4 ? names[pass][1] : "kept / closed in the last 30 days", metric);
        size_t i;
        json_t *e;
        int first = 1;
        json_array_foreach(json_object_get(r, "categories"), i, e) {
            json_t *v = json_object_get(e, metric);
            if (json_is_null(v)) continue;
            char t[256], c[512], line[1024];
            label(t, sizeof t, sget(e, "tenant"));
            label(c, sizeof c, sget(e, "category"));
            int w = json_is_real(v)
                ? snprintf(line, sizeof line, "%srelais_sla_%s{tenant=\"%s\",category=\"%s\"} %.4f\n",
                           first ? head : "", metric, t, c, json_real_value(v))
                : snprintf(line, sizeof line, "%srelais_sla_%s{tenant=\"%s\",category=\"%s\"} %lld\n",
                           first ? head : "", metric, t, c, (long long)json_integer_value(v));
            first = 0;
            if (w < 0) continue;
            if (len + (size_t)w + 1 > cap) {
                size_t ncap = (cap + (size_t)w) * 2;
                char *nb = realloc(buf, ncap);
                if (!nb) { free(buf); json_decref(r); return NULL; }
                buf = nb;
                cap = ncap;
            }
            memcpy(buf + len, line, (size_t)w + 1);
            len += (size_t)w;
        }
    }
    json_decref(r);
    return buf;
}
