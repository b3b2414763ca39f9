/*
 * err.c - error codes and error objects (include/relais/relais.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "relais/relais.h"

struct relais_error {
    relais_err code;
    int        retriable;
    char       msg[512];
};

static const char *const g_names[RELAIS_E__COUNT] = {
    [RELAIS_E_OK] = "ok",
    [RELAIS_E_INVALID] = "invalid",
    [RELAIS_E_CONFIG] = "config",
    [RELAIS_E_NOMEM] = "nomem",
    [RELAIS_E_IO] = "io",
    [RELAIS_E_JOURNAL] = "journal",
    [RELAIS_E_BUS] = "bus",
    [RELAIS_E_TIMEOUT] = "timeout",
    [RELAIS_E_UNAVAILABLE] = "unavailable",
    [RELAIS_E_REJECTED] = "rejected",
    [RELAIS_E_NOTFOUND] = "notfound",
    [RELAIS_E_DUPLICATE] = "duplicate",
    [RELAIS_E_INTERNAL] = "internal",
};

const char *relais_err_name(relais_err code)
{
    if ((int)code < 0 || code >= RELAIS_E__COUNT) return "unknown";
    return g_names[code];
}

relais_error *relais_error_new(relais_err code, int retriable, const char *fmt, ...)
{
    relais_error *e = calloc(1, sizeof *e);
    if (!e) return NULL;
    e->code = code;
    e->retriable = retriable ? 1 : 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return e;
}

relais_err relais_error_code(const relais_error *e) { return e ? e->code : RELAIS_E_OK; }
int relais_error_is_retriable(const relais_error *e) { return e ? e->retriable : 0; }
const char *relais_error_message(const relais_error *e) { return e ? e->msg : ""; }
void relais_error_destroy(relais_error *e) { free(e); }
