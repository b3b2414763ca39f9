/*
 * open311_render.c - GeoReport v2 answers as JSON and XML, the public view
 * of a stored request, and the client's parsers of a GeoReport server's JSON
 * answers (through hub/safeparse.c, so invalid JSON such as the spec's own
 * numbers with leading zeros, "service_code":001, is refused).
 *
 * XML is written with libxml2's text writer: the spec's XML is schemaless,
 * its examples name the elements (services/service, service_requests/
 * request, errors/error, service_definition/attributes/attribute/values/
 * value, discovery/endpoints/endpoint/formats/format).
 *
 * Pure functions, no state: any thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/xmlwriter.h>
#include <libxml/tree.h>
#include "open311_int.h"
#include "safeparse.h"

#define ANSWER_MAX (8 * 1024 * 1024)

const char *o311_content_type(o311_format fmt)
{
    return fmt == O311_XML ? "text/xml; charset=utf-8" : "application/json; charset=utf-8";
}

json_t *o311_errors(int code, const char *description)
{
    return json_pack("[{s:i,s:s}]", "code", code, "description", description ? description : "");
}

/* ---- XML -------------------------------------------------------------------- */

static const char *item_name(const char *container)
{
    static const char *const pairs[][2] = {
        { "services", "service" }, { "service_requests", "request" }, { "errors", "error" },
        { "attributes", "attribute" }, { "values", "value" }, { "endpoints", "endpoint" },
        { "formats", "format" },
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (!strcmp(container, pairs[i][0])) return pairs[i][1];
    return "item";
}

/* Text for XML 1.0: control characters other than tab, CR and LF become a
 * space (they cannot appear in XML, not even as references). */
static char *xml_text(const char *s)
{
    char *t = strdup(s);
    for (char *p = t; p && *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\n' && *p != '\r') *p = ' ';
    return t;
}

static int write_value(xmlTextWriterPtr w, const char *name, const json_t *v)
{
    if (xmlValidateNCName(BAD_CAST name, 0) != 0) return 0;     /* not an element name: left out */
    if (json_is_object(v)) {
        if (xmlTextWriterStartElement(w, BAD_CAST name) < 0) return -1;
        const char *k;
        json_t *c;
        json_object_foreach((json_t *)v, k, c)
            if (write_value(w, k, c) != 0) return -1;
        return xmlTextWriterEndElement(w) < 0 ? -1 : 0;
    }
    if (json_is_array(v)) {
        if (xmlTextWriterStartElement(w, BAD_CAST name) < 0) return -1;
        const char *item = item_name(name);
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
            if (write_value(w, item, c) != 0) return -1;
        return xmlTextWriterEndElement(w) < 0 ? -1 : 0;
    }
    char num[64];
    const char *text = "";
    char *owned = NULL;
    if (json_is_string(v)) text = owned = xml_text(json_string_value(v));
    else if (json_is_integer(v)) { snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v)); text = num; }
    else if (json_is_real(v)) { snprintf(num, sizeof num, "%.15g", json_real_value(v)); text = num; }
    else if (json_is_true(v)) text = "true";
    else if (json_is_false(v)) text = "false";
    if (!text) return -1;
    int rc = xmlTextWriterWriteElement(w, BAD_CAST name, BAD_CAST text) < 0 ? -1 : 0;
    free(owned);
    return rc;
}

static char *render_xml(const json_t *v, const char *root, size_t *len)
{
    xmlBufferPtr buf = xmlBufferCreate();
    if (!buf) return NULL;
    xmlTextWriterPtr w = xmlNewTextWriterMemory(buf, 0);
    if (!w) {
        xmlBufferFree(buf);
        return NULL;
    }
    xmlTextWriterSetIndent(w, 1);
    xmlTextWriterSetIndentString(w, BAD_CAST "  ");
    int rc = xmlTextWriterStartDocument(w, NULL, "utf-8", NULL) < 0 ? -1 : 0;
    if (rc == 0) rc = write_value(w, root, v);
    if (rc == 0 && xmlTextWriterEndDocument(w) < 0) rc = -1;
    xmlFreeTextWriter(w);
    char *out = NULL;
    if (rc == 0) {
        size_t n = (size_t)xmlBufferLength(buf);
        out = malloc(n + 1);
        if (out) {
            memcpy(out, xmlBufferContent(buf), n);
            out[n] = '\0';
            if (len) *len = n;
        }
    }
    xmlBufferFree(buf);
    return out;
}

char *o311_render(const json_t *v, o311_format fmt, const char *root, size_t *len)
{
    if (fmt == O311_XML) return render_xml(v, root, len);
    char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
    if (s && len) *len = strlen(s);
    return s;
}

/* ---- The public view of a stored request ----------------------------------- */

static json_t *as_text(const json_t *v)
{
    char buf[64];
    if (json_is_string(v)) return json_string(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return json_string(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%.15g", json_real_value(v));
        return json_string(buf);
    }
    return json_null();
}

static json_t *as_number(const json_t *v)
{
    if (json_is_number(v)) return json_real(json_number_value(v));
    const char *s = json_string_value(v);
    if (s && *s) {
        char *end = NULL;
        double d = strtod(s, &end);
        if (end && !*end) return json_real(d);
    }
    return json_null();
}

json_t *o311_public_request(const json_t *stored)
{
    static const char *const texts[] = { "service_request_id", "status", "status_notes", "service_name",
                                         "service_code", "description", "agency_responsible",
                                         "service_notice", "requested_datetime", "updated_datetime",
                                         "expected_datetime", "address", "address_id", "zipcode", NULL };
    json_t *o = json_object();
    for (size_t i = 0; o && texts[i]; i++) {
        json_t *v = as_text(json_object_get(stored, texts[i]));
        if (!strcmp(texts[i], "status")) {
            const char *st = json_string_value(v);
            if (!st || strcmp(st, "closed")) {
                json_decref(v);
                v = json_string("open");
            }
        }
        json_object_set_new(o, texts[i], v);
    }
    if (!o) return NULL;
    json_object_set_new(o, "lat", as_number(json_object_get(stored, "lat")));
    json_object_set_new(o, "long", as_number(json_object_get(stored, "long")));
    json_object_set_new(o, "media_url", as_text(json_object_get(stored, "media_url")));
    return o;
}

/* ---- Client: parsing a server's JSON answers ------------------------------- */

static int id_text(const json_t *v, char *out, size_t outlen)
{
    out[0] = '\0';
    if (json_is_string(v) && *json_string_value(v)) {
        if (strlen(json_string_value(v)) >= outlen) return -1;
        snprintf(out, outlen, "%s", json_string_value(v));
        return 0;
    }
    if (json_is_integer(v)) {
        snprintf(out, outlen, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return 0;
    }
    return -1;
}

static json_t *parse_answer(const char *body, size_t len, char *errstr, size_t errlen)
{
    relais_parse_limits lim = { .max_bytes = ANSWER_MAX, .max_depth = 16 };
    return relais_json_parse(body ? body : "", len, "answer", &lim, errstr, errlen);
}

int o311_parse_post_answer(const char *body, size_t len, char *id, size_t idlen,
                           char *token, size_t toklen, char *errstr, size_t errlen)
{
    id[0] = token[0] = '\0';
    json_t *root = parse_answer(body, len, errstr, errlen);
    if (!root) return -1;
    json_t *first = json_is_array(root) ? json_array_get(root, 0) : root;
    if (!json_is_object(first)) {
        snprintf(errstr, errlen, "answer: not an array of objects");
        json_decref(root);
        return -1;
    }
    int has_id = id_text(json_object_get(first, "service_request_id"), id, idlen) == 0;
    int has_tok = id_text(json_object_get(first, "token"), token, toklen) == 0;
    json_decref(root);
    if (!has_id && !has_tok) {
        snprintf(errstr, errlen, "answer: neither service_request_id nor token");
        return -1;
    }
    return 0;
}

json_t *o311_parse_requests(const char *body, size_t len, char *errstr, size_t errlen)
{
    json_t *root = parse_answer(body, len, errstr, errlen);
    if (!root) return NULL;
    if (!json_is_array(root)) {
        snprintf(errstr, errlen, "answer: not an array of requests");
        json_decref(root);
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(root, i, it) {
        if (!json_is_object(it)) {
            snprintf(errstr, errlen, "answer: element %zu is not an object", i);
            json_decref(out);
            json_decref(root);
            return NULL;
        }
        json_t *c = json_deep_copy(it);
        static const char *const ids[] = { "service_request_id", "token", "address_id", "zipcode",
                                           "service_code", NULL };
        for (size_t k = 0; c && ids[k]; k++) {
            json_t *v = json_object_get(c, ids[k]);
            if (json_is_integer(v)) json_object_set_new(c, ids[k], as_text(v));
        }
        json_array_append_new(out, c);
    }
    json_decref(root);
    return out;
}

int o311_parse_errors(const char *body, size_t len, char *out, size_t outlen)
{
    char err[256];
    out[0] = '\0';
    json_t *root = parse_answer(body, len, err, sizeof err);
    json_t *first = json_is_array(root) ? json_array_get(root, 0) : NULL;
    const char *desc = json_string_value(json_object_get(first, "description"));
    json_t *code = json_object_get(first, "code");
    int rc = -1;
    if (desc) {
        if (json_is_integer(code)) snprintf(out, outlen, "%" JSON_INTEGER_FORMAT " %s", json_integer_value(code), desc);
        else snprintf(out, outlen, "%s", desc);
        rc = 0;
    }
    json_decref(root);
    return rc;
}
