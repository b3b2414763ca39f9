/*
 * workdays.h - working days of French town halls, for service commitments
 * ("we answer within 5 working days"): weekends and public holidays (jours
 * fériés) are not counted. Dates are civil dates in Paris time.
 *
 * Calendars: "fr" (metropolitan France: 1 January, Easter Monday, 1 May,
 * 8 May, Ascension, Whit Monday, 14 July, 15 August, 1 November,
 * 11 November, 25 December) and "fr-alsace-moselle" (the same plus Good
 * Friday and 26 December, local law of Alsace-Moselle). Pure functions, any
 * thread.
 */
#ifndef RELAIS_WORKDAYS_H
#define RELAIS_WORKDAYS_H
#include <stdint.h>

typedef struct relais_date { int y, m, d; } relais_date;

typedef enum relais_calendar { RELAIS_CAL_FR = 0, RELAIS_CAL_FR_ALSACE_MOSELLE = 1 } relais_calendar;

/* "fr" or "fr-alsace-moselle" -> 0 and *out; -1 for anything else. */
int  relais_calendar_parse(const char *name, relais_calendar *out);
/* Easter Sunday of year y (Gregorian computus). */
relais_date relais_easter(int y);
/* 1 when d is a public holiday of the calendar; 0 else. */
int  relais_is_holiday(relais_date d, relais_calendar cal);
/* 1 when d is a working day (Monday to Friday and not a holiday). */
int  relais_is_workday(relais_date d, relais_calendar cal);
/* Working days from `from` (excluded) to `to` (included); 0 when to <= from.
 * A request received on a Friday and answered the next Tuesday took 2. */
int  relais_workdays_between(relais_date from, relais_date to, relais_calendar cal);
/* The n-th working day after `from` (the deadline of an n-day commitment). */
relais_date relais_workdays_add(relais_date from, int n, relais_calendar cal);
/* Seconds since the epoch of an RFC 3339 date-time ("2026-11-25T10:00:00+01:00",
 * "...Z", fractions allowed); 0 and *out set, or -1 when it does not parse. */
int  relais_rfc3339_parse(const char *s, int64_t *out);
/* The same in microseconds (the fraction kept to 6 digits). */
int  relais_rfc3339_parse_us(const char *s, int64_t *out);
/* The civil date in Paris (CET/CEST, EU summer-time rule) at epoch second t. */
relais_date relais_paris_date(int64_t t);
/* "YYYY-MM-DD" into out (>= 11 bytes). */
void relais_date_format(relais_date d, char *out, unsigned long outlen);
/* "YYYY-MM-DD" -> 0 and *out, or -1. */
int  relais_date_parse(const char *s, relais_date *out);
/* Days since 1970-01-01 (negative before), and back. */
long relais_date_days(relais_date d);
relais_date relais_date_from_days(long days);
#endif
