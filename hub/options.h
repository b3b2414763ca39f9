/*
 * options.h - option tables (include/relais/connector.h) applied to a YAML map:
 * the single source for parsing, validation, defaults and `connectors describe`.
 */
#ifndef RELAIS_OPTIONS_H
#define RELAIS_OPTIONS_H
#include <jansson.h>
#include "relais/connector.h"
#include "yamltree.h"
#include "errlist.h"

/* Fill `cfg` (config_size bytes, zeroed by the caller) from the keys of `map`
 * that are not in `skip` (NULL-terminated list of keys handled elsewhere, e.g.
 * "name", "type", "mode", "tenant"). Applies defaults, checks types, enum
 * values, required options, unknown keys ("unknown option 'x' for connector
 * http; known: ..."), mode applicability; resolves secrets. Every error is added to
 * `errs` as FILE:LINE. Returns 0 when no error was added. */
int  relais_options_apply(const relais_option *tbl, void *cfg, unsigned mode,
                          const yt_node *map, const char *const *skip,
                          const char *file, relais_errlist *errs);
/* Free what apply allocated inside cfg (strings, lists, kv). Does not free cfg. */
void relais_options_free(const relais_option *tbl, void *cfg);
/* JSON description of a table: [{name,type,default,required,enum,desc,modes}] */
json_t *relais_options_describe(const relais_option *tbl);

/* Comma-separated text -> newly allocated NULL-terminated list, items
 * trimmed, empty ones dropped (free each item and the list). NULL on
 * out of memory. */
char **relais_split_list(const char *s);

/* Value parsers, shared with the rest of the config. 0 ok, -1 invalid. */
int relais_parse_duration_ms(const char *s, long *out);
int relais_parse_size(const char *s, long *out);
int relais_parse_bool(const char *s, int *out);
/* "env:NAME" or "file:/path" -> newly allocated secret (file: trailing newline
 * stripped). -1 with a message in errstr (never containing the secret). */
int relais_resolve_secret(const char *spec, char **out, char *errstr, size_t errlen);
#endif
