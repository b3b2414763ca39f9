/*
 * log.c - one-line logs on stderr. The level is process-wide, set once at
 * start (relais_log_set_level) before threads start; reads are atomic.
 * Never log payloads or secrets.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include "relais/relais.h"

static atomic_int g_level = RELAIS_LOG_INFO;

void relais_log_set_level(relais_log_level lvl) { atomic_store(&g_level, (int)lvl); }
relais_log_level relais_log_get_level(void) { return (relais_log_level)atomic_load(&g_level); }

void relais_logf(relais_log_level lvl, const char *component, const char *fmt, ...)
{
    if ((int)lvl > atomic_load(&g_level)) return;
    static const char *const names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* one fprintf per line: stdio locks the stream, lines do not interleave */
    fprintf(stderr, "%s.%03ldZ %-5s [%s] %s\n", when, ts.tv_nsec / 1000000L,
            names[lvl <= RELAIS_LOG_DEBUG ? lvl : RELAIS_LOG_DEBUG],
            component ? component : "relais", msg);
}
