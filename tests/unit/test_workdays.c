/*
 * test_workdays.c - French working days, Easter, Paris civil dates
 * (hub/workdays.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "workdays.h"

static relais_date D(int y, int m, int d) { relais_date r = { y, m, d }; return r; }

static void assert_date(relais_date got, int y, int m, int d)
{
    char a[16], b[16];
    relais_date_format(got, a, sizeof a);
    relais_date_format(D(y, m, d), b, sizeof b);
    assert_string_equal(a, b);
}

static void test_easter(void **state)
{
    (void)state;
    assert_date(relais_easter(2024), 2024, 3, 31);
    assert_date(relais_easter(2025), 2025, 4, 20);
    assert_date(relais_easter(2026), 2026, 4, 5);
    assert_date(relais_easter(2027), 2027, 3, 28);
    assert_date(relais_easter(2038), 2038, 4, 25);
    assert_date(relais_easter(2285), 2285, 3, 22);   /* earliest possible */
}

static void test_holidays(void **state)
{
    (void)state;
    relais_calendar fr = RELAIS_CAL_FR, am = RELAIS_CAL_FR_ALSACE_MOSELLE;
    assert_true(relais_is_holiday(D(2026, 4, 6), fr));     /* Easter Monday */
    assert_true(relais_is_holiday(D(2026, 5, 14), fr));    /* Ascension */
    assert_true(relais_is_holiday(D(2026, 5, 25), fr));    /* Whit Monday */
    assert_true(relais_is_holiday(D(2026, 7, 14), fr));
    assert_true(relais_is_holiday(D(2026, 11, 11), fr));
    assert_false(relais_is_holiday(D(2026, 4, 3), fr));    /* Good Friday: only in Alsace-Moselle */
    assert_true(relais_is_holiday(D(2026, 4, 3), am));
    assert_false(relais_is_holiday(D(2026, 12, 26), fr));
    assert_true(relais_is_holiday(D(2026, 12, 26), am));
    assert_false(relais_is_holiday(D(2026, 11, 12), fr));
    assert_false(relais_is_workday(D(2026, 11, 28), fr));  /* Saturday */
    assert_false(relais_is_workday(D(2026, 11, 29), fr));  /* Sunday */
    assert_true(relais_is_workday(D(2026, 11, 27), fr));   /* Friday */
    relais_calendar c;
    assert_int_equal(relais_calendar_parse("fr", &c), 0);
    assert_int_equal(c, RELAIS_CAL_FR);
    assert_int_equal(relais_calendar_parse("fr-alsace-moselle", &c), 0);
    assert_int_equal(c, RELAIS_CAL_FR_ALSACE_MOSELLE);
    assert_int_equal(relais_calendar_parse("de", &c), -1);
}

static void test_between_and_add(void **state)
{
    (void)state;
    relais_calendar fr = RELAIS_CAL_FR;
    /* Friday -> next Tuesday: Monday and Tuesday */
    assert_int_equal(relais_workdays_between(D(2026, 11, 27), D(2026, 12, 1), fr), 2);
    /* Monday 9 -> Friday 13 November 2026, the 11th (Wednesday) is a holiday */
    assert_int_equal(relais_workdays_between(D(2026, 11, 9), D(2026, 11, 13), fr), 3);
    assert_int_equal(relais_workdays_between(D(2026, 11, 9), D(2026, 11, 9), fr), 0);
    assert_int_equal(relais_workdays_between(D(2026, 11, 13), D(2026, 11, 9), fr), 0);
    /* Wednesday 23 December + 3: Thursday 24, (25, 26, 27), Monday 28, Tuesday 29 */
    assert_date(relais_workdays_add(D(2026, 12, 23), 3, fr), 2026, 12, 29);
    assert_date(relais_workdays_add(D(2026, 12, 23), 0, fr), 2026, 12, 23);
    /* round trip over a year */
    for (int n = 0; n < 260; n += 7) {
        relais_date dl = relais_workdays_add(D(2026, 1, 2), n, fr);
        assert_int_equal(relais_workdays_between(D(2026, 1, 2), dl, fr), n);
    }
}

static void test_paris_dates(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(relais_rfc3339_parse("2026-11-25T23:30:00Z", &t), 0);
    assert_date(relais_paris_date(t), 2026, 11, 26);               /* 00:30 CET */
    assert_int_equal(relais_rfc3339_parse("2026-07-14T22:30:00Z", &t), 0);
    assert_date(relais_paris_date(t), 2026, 7, 15);                /* 00:30 CEST */
    assert_int_equal(relais_rfc3339_parse("2026-10-24T22:30:00Z", &t), 0);
    assert_date(relais_paris_date(t), 2026, 10, 25);               /* still summer time */
    assert_int_equal(relais_rfc3339_parse("2026-10-25T22:30:00Z", &t), 0);
    assert_date(relais_paris_date(t), 2026, 10, 25);               /* winter time: 23:30 */
    assert_int_equal(relais_rfc3339_parse("2026-11-25T10:00:00.318205+01:00", &t), 0);
    assert_int_equal(t, 1795597200);
    assert_int_equal(relais_rfc3339_parse("2026-11-25T10:00:00", &t), -1);   /* no zone */
    assert_int_equal(relais_rfc3339_parse("2026-13-25T10:00:00Z", &t), -1);
    assert_int_equal(relais_rfc3339_parse("2026-11-25T10:00:00+0100", &t), -1);
    relais_date d;
    assert_int_equal(relais_date_parse("2026-02-28", &d), 0);
    assert_int_equal(relais_date_parse("2026-02-30", &d), -1);
    assert_int_equal(relais_date_parse("26-02-28", &d), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_easter),
        cmocka_unit_test(test_holidays),
        cmocka_unit_test(test_between_and_add),
        cmocka_unit_test(test_paris_dates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
