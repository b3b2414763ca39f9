/*
 * registry.c - the built-in connector descriptors.
 * Add a connector: define `const relais_connector relais_connector_<name>` in
 * connectors/<name>/<name>.c and list it here.
 */
#include <string.h>
#include "config.h"

extern const relais_connector relais_connector_http;
extern const relais_connector relais_connector_file;
extern const relais_connector relais_connector_kafka;

static const relais_connector *const g_builtin[] = {
    &relais_connector_http,
    &relais_connector_file,
    &relais_connector_kafka,
};

const relais_connector *const *relais_registry_all(size_t *n)
{
    *n = sizeof g_builtin / sizeof g_builtin[0];
    return g_builtin;
}

const relais_connector *relais_registry_find(const char *name)
{
    size_t n;
    const relais_connector *const *all = relais_registry_all(&n);
    for (size_t i = 0; i < n; i++)
        if (name && strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
