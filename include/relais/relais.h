/*
 * relais.h - public entry point of Relais: version, error codes, error objects.
 *
 * Conventions used across the whole code base (one convention, everywhere):
 *   - functions returning int return 0 on success and -1 on failure;
 *   - constructors take an `errstr` buffer the caller owns and fill it on failure;
 *   - `*_new` returns an object the caller owns and frees with the matching
 *     `*_destroy`; `*_destroy(NULL)` is always a no-op;
 *   - after handing a pointer over to a function documented as "takes
 *     ownership", set yours to NULL.
 */
#ifndef RELAIS_RELAIS_H
#define RELAIS_RELAIS_H

#include <stddef.h>
#include <stdarg.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef RELAIS_VERSION_STRING
#define RELAIS_VERSION_STRING "0.1.0"
#endif

/* Stable error codes: never renumber, only append. */
typedef enum relais_err {
    RELAIS_E_OK          = 0,
    RELAIS_E_INVALID     = 1,  /* malformed or invalid input */
    RELAIS_E_CONFIG      = 2,  /* configuration error */
    RELAIS_E_NOMEM       = 3,
    RELAIS_E_IO          = 4,  /* local file or socket error */
    RELAIS_E_JOURNAL     = 5,  /* PostgreSQL unreachable or failing */
    RELAIS_E_BUS         = 6,  /* Kafka unreachable or failing */
    RELAIS_E_TIMEOUT     = 7,
    RELAIS_E_UNAVAILABLE = 8,  /* a peer is down or overloaded */
    RELAIS_E_REJECTED    = 9,  /* a peer refused for good */
    RELAIS_E_NOTFOUND    = 10,
    RELAIS_E_DUPLICATE   = 11,
    RELAIS_E_INTERNAL    = 12,
    RELAIS_E__COUNT
} relais_err;

const char *relais_err_name(relais_err code);

/* An error that knows what happened, where, and whether a retry may help
 * (after librdkafka's rd_kafka_error_t). */
typedef struct relais_error relais_error;

relais_error *relais_error_new(relais_err code, int retriable, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
relais_err  relais_error_code(const relais_error *e);
int         relais_error_is_retriable(const relais_error *e);
const char *relais_error_message(const relais_error *e);
void        relais_error_destroy(relais_error *e);

/* Logging: one line per call on stderr, "time level [component] message".
 * Never log payloads or secrets. */
typedef enum relais_log_level {
    RELAIS_LOG_ERROR = 0,
    RELAIS_LOG_WARN  = 1,
    RELAIS_LOG_INFO  = 2,
    RELAIS_LOG_DEBUG = 3
} relais_log_level;

void relais_log_set_level(relais_log_level lvl);
relais_log_level relais_log_get_level(void);
void relais_logf(relais_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif
