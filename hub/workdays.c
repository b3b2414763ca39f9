/*
 * workdays.c - French working days and Paris civil dates (see workdays.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "workdays.h"

int relais_calendar_parse(const char *name, relais_calendar *out)
{
    if (!name) return -1;
    if (strcmp(name, "fr") == 0) { *out = RELAIS_CAL_FR; return 0; }
    if (strcmp(name, "fr-alsace-moselle") == 0) { *out = RELAIS_CAL_FR_ALSACE_MOSELLE; return 0; }
    return -1;
}

/* days from civil (Howard Hinnant's algorithm), proleptic Gregorian */
long relais_date_days(relais_date dt)
{
    long y = dt.y - (dt.m <= 2);
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long mp = (dt.m + 9) % 12;
    long doy = (153 * mp + 2) / 5 + dt.d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

relais_date relais_date_from_days(long z)
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long y = yoe + era * 400;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    long d = doy - (153 * mp + 2) / 5 + 1;
    long m = mp < 10 ? mp + 3 : mp - 9;
    relais_date r = { (int)(y + (m <= 2)), (int)m, (int)d };
    return r;
}

relais_date relais_easter(int y)
{
    /* anonymous Gregorian algorithm (Meeus/Jones/Butcher) */
    int a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4;
    int f = (b + 8) / 25, g = (b - f + 1) / 3, h = (19 * a + b - d - g + 15) % 30;
    int i = c / 4, k = c % 4, l = (32 + 2 * e + 2 * i - h - k) % 7;
    int m = (a + 11 * h + 22 * l) / 451;
    int month = (h + l - 7 * m + 114) / 31, day = ((h + l - 7 * m + 114) % 31) + 1;
    relais_date r = { y, month, day };
    return r;
}

int relais_is_holiday(relais_date dt, relais_calendar cal)
{
    static const int fixed[][2] = { {1, 1}, {5, 1}, {5, 8}, {7, 14}, {8, 15}, {11, 1}, {11, 11}, {12, 25} };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (dt.m == fixed[i][0] && dt.d == fixed[i][1]) return 1;
    if (cal == RELAIS_CAL_FR_ALSACE_MOSELLE && dt.m == 12 && dt.d == 26) return 1;
    long e = relais_date_days(relais_easter(dt.y));
    long t = relais_date_days(dt);
    if (t == e + 1 || t == e + 39 || t == e + 50) return 1;     /* Easter Monday, Ascension, Whit Monday */
    if (cal == RELAIS_CAL_FR_ALSACE_MOSELLE && t == e - 2) return 1;   /* Good Friday */
    return 0;
}

int relais_is_workday(relais_date dt, relais_calendar cal)
{
    long days = relais_date_days(dt);
    int wd = (int)(((days % 7) + 7 + 4) % 7);    /* 1970-01-01 was a Thursday: 0 = Sunday */
    if (wd == 0 || wd == 6) return 0;
    return !relais_is_holiday(dt, cal);
}

int relais_workdays_between(relais_date from, relais_date to, relais_calendar cal)
{
    long a = relais_date_days(from), b = relais_date_days(to);
    int n = 0;
    for (long t = a + 1; t <= b; t++)
        if (relais_is_workday(relais_date_from_days(t), cal)) n++;
    return n;
}

relais_date relais_workdays_add(relais_date from, int n, relais_calendar cal)
{
    long t = relais_date_days(from);
    while (n > 0) {
        t++;
        if (relais_is_workday(relais_date_from_days(t), cal)) n--;
    }
    return relais_date_from_days(t);
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int relais_rfc3339_parse_us(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) < 20) return -1;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' || digits(s + 8, 2, &d)
        || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) || s[13] != ':'
        || digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
        return -1;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return -1;
    const char *p = s + 19;
    long frac = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') return -1;
        int n = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            if (n < 6) { frac = frac * 10 + (*p - '0'); n++; }
        for (; n < 6; n++) frac *= 10;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59) return -1;
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) return -1;
    relais_date dt = { y, mo, d };
    *out = ((int64_t)relais_date_days(dt) * 86400 + h * 3600 + mi * 60 + se - off) * 1000000 + frac;
    return 0;
}

int relais_rfc3339_parse(const char *s, int64_t *out)
{
    int64_t us;
    if (relais_rfc3339_parse_us(s, &us) != 0) return -1;
    *out = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);   /* whole seconds, fraction dropped */
    return 0;
}

/* Summer time in the EU: from the last Sunday of March 01:00 UTC to the last
 * Sunday of October 01:00 UTC. */
static int64_t last_sunday_utc1(int y, int m)
{
    relais_date last = { y, m, 31 };
    long days = relais_date_days(last);
    int wd = (int)(((days % 7) + 7 + 4) % 7);
    return (int64_t)(days - wd) * 86400 + 3600;
}

relais_date relais_paris_date(int64_t t)
{
    long days = (long)((t >= 0 ? t : t - 86399) / 86400);
    int y = relais_date_from_days(days).y;
    int64_t start = last_sunday_utc1(y, 3), end = last_sunday_utc1(y, 10);
    int64_t local = t + (t >= start && t < end ? 7200 : 3600);
    long ld = (long)((local >= 0 ? local : local - 86399) / 86400);
    return relais_date_from_days(ld);
}

void relais_date_format(relais_date d, char *out, unsigned long outlen)
{
    snprintf(out, outlen, "%04d-%02d-%02d", d.y, d.m, d.d);
}

int relais_date_parse(const char *s, relais_date *out)
{
    int y, m, d;
    if (!s || strlen(s) != 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &m) || s[7] != '-'
        || digits(s + 8, 2, &d) || m < 1 || m > 12 || d < 1 || d > 31)
        return -1;
    relais_date r = { y, m, d };
    /* refuse 2026-02-30: it would come back as another date */
    relais_date back = relais_date_from_days(relais_date_days(r));
    if (back.y != y || back.m != m || back.d != d) return -1;
    *out = r;
    return 0;
}
