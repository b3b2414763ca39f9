/*
 * sla.h - service-level figures of citizens' requests, from the state the
 * `lifecycle` connector keeps ("sla/<subject>" entries: opened_at,
 * category, commitment in working days, deadline, closing and delay).
 * Used by `relais sla` and by /metrics. Reads the journal's database only.
 */
#ifndef RELAIS_SLA_H
#define RELAIS_SLA_H
#include <jansson.h>
#include "journal.h"
#include "workdays.h"

/* The report for tenant (NULL: all) on `today`, closings counted when their
 * Paris day is within [from, to]:
 * {"today","from","to",
 *  "overdue":[{"tenant","subject","category","opened_at","deadline","commitment_days",
 *              "late_days"}]      open requests past their deadline, most late first
 *                                 (late_days: working days after the deadline, calendar "fr"),
 *  "categories":[{"tenant","category","open","overdue","closed","kept","share_kept"}]}
 * share_kept: kept / closed (null when none closed). NULL with errstr on error. */
json_t *relais_sla_report(relais_journal *j, const char *tenant, relais_date from, relais_date to,
                          relais_date today, char *errstr, size_t errlen);
/* The same figures as Prometheus text (gauges relais_sla_open, relais_sla_overdue,
 * relais_sla_closed, relais_sla_kept, relais_sla_share_kept per tenant and
 * category, closings of the last 30 days). malloc'd; NULL on error. */
char *relais_sla_metrics(relais_journal *j, relais_date today);
#endif
