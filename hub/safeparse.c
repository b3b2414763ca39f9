/*
 * safeparse.c - the only way Relais parses outside XML and JSON (see
 * safeparse.h).
 *
 * XML: one libxml2 parser context per call (xmlCreateMemoryParserCtxt +
 * xmlParseDocument). The context's own SAX handler block is changed:
 *   - internalSubset / externalSubset / entityDecl stop the parser and flag
 *     the document: `<!DOCTYPE` is refused as soon as its name and external
 *     id are read, before '[' (so no entity or parameter entity is ever
 *     declared) and before any external subset could be fetched;
 *   - startElementNs / endElementNs wrap the SAX2 ones to count depth and
 *     stop the parser past max_depth;
 *   - serror (the structured error channel libxml2 uses when a context's SAX
 *     block has it) records the first error with line and column, so nothing
 *     is printed and no error state is shared between threads. Errors that
 *     libxml2 raises without a context (encoding conversion, I/O) go to the
 *     calling thread's structured handler (libxml2 keeps it per thread),
 *     which points at the same recorder during the call and is restored
 *     after it.
 * Options: XML_PARSE_NONET | XML_PARSE_NOCDATA (CDATA becomes plain text)
 * | XML_PARSE_BIG_LINES; never NOENT, DTDLOAD, DTDATTR, DTDVALID, XINCLUDE
 * or HUGE. xmlCtxtUseOptions also clears the entity/DTD switches that the
 * thread's libxml2 defaults might have set.
 *
 * relais_safeparse_init() (once, pthread_once) initialises libxml2 and
 * installs the process-wide external entity loader that denies everything
 * (so even a libxml2 call elsewhere in the process cannot read files or the
 * network through entities, DTDs or XInclude; note that this includes
 * xmlReadFile and XSD imports). relais_xml_parse calls it too, so a caller
 * that forgot it is still protected.
 *
 * JSON: a pre-scan over the bytes counts '[' and '{' outside strings and
 * stops at max_depth + 1 before jansson (which recurses up to 2048) runs;
 * then json_loadb with JSON_REJECT_DUPLICATES | JSON_DECODE_ANY (no
 * JSON_ALLOW_NUL, no JSON_DISABLE_EOF_CHECK: the whole buffer is one value).
 *
 * Threads: no state is shared between calls except what init sets once;
 * each call owns its parser context, its state and its errstr.
 * Error texts are always valid UTF-8 without control characters (they go
 * into logs, HTTP answers and the journal).
 */
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/SAX2.h>
#include <libxml/xmlerror.h>
#include "safeparse.h"

#define DEFAULT_MAX_BYTES ((size_t)16 * 1024 * 1024)
#define DEFAULT_MAX_DEPTH 64

/* ---- Shared helpers -------------------------------------------------------- */

static size_t lim_bytes(const relais_parse_limits *lim)
{
    return lim && lim->max_bytes ? lim->max_bytes : DEFAULT_MAX_BYTES;
}

static int lim_depth(const relais_parse_limits *lim)
{
    return lim && lim->max_depth > 0 ? lim->max_depth : DEFAULT_MAX_DEPTH;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

/* In place: control characters and bytes of invalid UTF-8 become '?';
 * trailing newlines and spaces go. */
static void clean_text(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = '\0';
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F) {
            s[i++] = '?';
            continue;
        }
        size_t k = utf8_seq((const unsigned char *)s + i, n - i);
        if (k == 0) {
            s[i++] = '?';
            continue;
        }
        i += k;
    }
}

static void set_err(char *errstr, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *errstr, size_t errlen, const char *fmt, ...)
{
    if (!errstr || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errstr, errlen, fmt, ap);
    va_end(ap);
    clean_text(errstr);
}

/* ---- Initialisation -------------------------------------------------------- */

static xmlParserInputPtr deny_entity_loader(const char *url, const char *id,
                                            xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_libraries(void)
{
    xmlInitParser();
    xmlSetExternalEntityLoader(deny_entity_loader);
}

void relais_safeparse_init(void)
{
    pthread_once(&init_once, init_libraries);
}

/* ---- XML ------------------------------------------------------------------- */

typedef struct xml_state {
    int  max_depth;
    int  depth;
    int  refused;          /* we stopped the parser: msg says why */
    int  line, column;     /* where we stopped */
    char msg[128];
    int  have_err;         /* first libxml2 error */
    int  err_line, err_column;
    char err_msg[256];
} xml_state;

static xml_state *state_of(void *ctx)
{
    xmlParserCtxtPtr ctxt = ctx;
    return ctxt ? ctxt->_private : NULL;
}

static void refuse(void *ctx, const char *msg)
{
    xmlParserCtxtPtr ctxt = ctx;
    xml_state *st = state_of(ctx);
    if (st && !st->refused) {
        st->refused = 1;
        st->line = ctxt->input ? ctxt->input->line : 0;
        st->column = ctxt->input ? ctxt->input->col : 0;
        snprintf(st->msg, sizeof st->msg, "%s", msg);
    }
    xmlStopParser(ctxt);
}

static const char DOCTYPE_REFUSED[] = "DOCTYPE refused (no DTDs or entities are accepted)";

static void on_internal_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                               const xmlChar *system_id)
{
    (void)name;
    (void)ext_id;
    (void)system_id;
    refuse(ctx, DOCTYPE_REFUSED);
}

static void on_external_subset(void *ctx, const xmlChar *name, const xmlChar *ext_id,
                               const xmlChar *system_id)
{
    (void)name;
    (void)ext_id;
    (void)system_id;
    refuse(ctx, DOCTYPE_REFUSED);
}

static void on_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                           const xmlChar *system_id, xmlChar *content)
{
    (void)name;
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    refuse(ctx, DOCTYPE_REFUSED);
}

static void on_start_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                             const xmlChar *uri, int nb_namespaces, const xmlChar **namespaces,
                             int nb_attributes, int nb_defaulted, const xmlChar **attributes)
{
    xml_state *st = state_of(ctx);
    if (++st->depth > st->max_depth) {
        char msg[64];
        snprintf(msg, sizeof msg, "nesting deeper than %d levels", st->max_depth);
        refuse(ctx, msg);
        return;
    }
    xmlSAX2StartElementNs(ctx, localname, prefix, uri, nb_namespaces, namespaces, nb_attributes,
                          nb_defaulted, attributes);
}

static void on_end_element(void *ctx, const xmlChar *localname, const xmlChar *prefix,
                           const xmlChar *uri)
{
    xml_state *st = state_of(ctx);
    if (st->depth > 0) st->depth--;
    xmlSAX2EndElementNs(ctx, localname, prefix, uri);
}

/* Errors of this parse, in order: the parser's own through the context's
 * serror, and those libxml2 raises without a context (character encoding
 * conversion, I/O) through this thread's structured handler, which
 * relais_xml_parse points here for the duration of the call. */
static void on_error(void *ctx, xmlErrorPtr e)
{
    xmlParserCtxtPtr ctxt = ctx;
    xml_state *st = state_of(ctx);
    if (!st || !e || st->have_err || e->level < XML_ERR_ERROR) return;
    st->have_err = 1;
    st->err_line = e->line > 0 ? e->line : ctxt->input ? ctxt->input->line : 0;
    st->err_column = e->int2 > 0 ? e->int2 : ctxt->input ? ctxt->input->col : 0;
    snprintf(st->err_msg, sizeof st->err_msg, "%s", e->message ? e->message : "parse error");
}

xmlDocPtr relais_xml_parse(const char *buf, size_t len, const char *name,
                           const relais_parse_limits *lim, char *errstr, size_t errlen)
{
    if (!name) name = "input";
    if (errstr && errlen) errstr[0] = '\0';
    size_t max = lim_bytes(lim);
    if (len > max) {
        set_err(errstr, errlen, "%s: %zu bytes, larger than the %zu allowed", name, len, max);
        return NULL;
    }
    if (len > INT_MAX) {
        set_err(errstr, errlen, "%s: %zu bytes, larger than the %d the XML parser takes", name,
                len, INT_MAX);
        return NULL;
    }
    if (!buf || len == 0) {
        set_err(errstr, errlen, "%s:1:1: Document is empty", name);
        return NULL;
    }
    relais_safeparse_init();

    xmlParserCtxtPtr ctxt = xmlCreateMemoryParserCtxt(buf, (int)len);
    if (!ctxt || !ctxt->sax) {
        xmlFreeParserCtxt(ctxt);
        set_err(errstr, errlen, "%s: out of memory", name);
        return NULL;
    }
    xml_state st = { .max_depth = lim_depth(lim) };
    ctxt->_private = &st;
    xmlSAXHandlerPtr sax = ctxt->sax;   /* this context's own copy */
    sax->internalSubset = on_internal_subset;
    sax->externalSubset = on_external_subset;
    sax->entityDecl = on_entity_decl;
    sax->startElementNs = on_start_element;
    sax->endElementNs = on_end_element;
    sax->serror = on_error;
    sax->warning = NULL;
    sax->error = NULL;
    sax->fatalError = NULL;
    sax->ignorableWhitespace = xmlSAX2Characters;   /* blanks are kept */
    xmlCtxtUseOptions(ctxt, XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_BIG_LINES);
    ctxt->vctxt.error = NULL;
    ctxt->vctxt.warning = NULL;

    xmlStructuredErrorFunc prev = xmlStructuredError;
    void *prev_ctx = xmlStructuredErrorContext;
    xmlSetStructuredErrorFunc(ctxt, on_error);   /* per thread in libxml2 */
    xmlParseDocument(ctxt);
    xmlSetStructuredErrorFunc(prev_ctx, prev);

    xmlDocPtr doc = ctxt->myDoc;
    ctxt->myDoc = NULL;
    int ok = doc && ctxt->wellFormed && !st.refused && !st.have_err;
    if (!ok) {
        if (st.refused)
            set_err(errstr, errlen, "%s:%d:%d: %s", name, st.line, st.column, st.msg);
        else if (st.have_err)
            set_err(errstr, errlen, "%s:%d:%d: %s", name, st.err_line, st.err_column, st.err_msg);
        else
            set_err(errstr, errlen, "%s:%d:%d: not a well-formed XML document", name,
                    ctxt->input ? ctxt->input->line : 1, ctxt->input ? ctxt->input->col : 1);
        xmlFreeDoc(doc);
        doc = NULL;
    }
    ctxt->_private = NULL;
    xmlFreeParserCtxt(ctxt);
    return doc;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Nesting pre-scan: 0 when '[' / '{' outside strings never nest deeper than
 * max; -1 otherwise with the line and column (in characters, as jansson
 * counts them) of the bracket that goes too deep. */
static int json_depth_scan(const char *buf, size_t len, int max, int *line, int *column)
{
    int depth = 0, in_str = 0, esc = 0, ln = 1, col = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\n') {
            ln++;
            col = 0;
        } else if ((c & 0xC0) != 0x80) {
            col++;
        }
        if (in_str) {
            if (esc) esc = 0;
            else if (c == '\\') esc = 1;
            else if (c == '"') in_str = 0;
            continue;
        }
        if (c == '"') {
            in_str = 1;
        } else if (c == '[' || c == '{') {
            if (++depth > max) {
                *line = ln;
                *column = col;
                return -1;
            }
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

/* The duplicate key jansson stopped at: its string token ends right before
 * err->position. Decoded into key (truncated), 0 when found. */
static int duplicate_key(const char *buf, size_t len, const json_error_t *err, char *key,
                         size_t keylen)
{
    if (err->position <= 1 || (size_t)err->position > len) return -1;
    size_t end = (size_t)err->position;   /* one past the closing quote */
    if (buf[end - 1] != '"') return -1;
    size_t k = end - 1;
    while (k > 0) {
        k--;
        if (buf[k] != '"') continue;
        size_t bs = 0;
        while (bs < k && buf[k - 1 - bs] == '\\') bs++;
        if (bs % 2 == 0) break;
    }
    if (buf[k] != '"' || k == end - 1) return -1;
    json_t *s = json_loadb(buf + k, end - k, JSON_DECODE_ANY, NULL);
    if (!json_is_string(s)) {
        json_decref(s);
        return -1;
    }
    snprintf(key, keylen, "%s", json_string_value(s));
    json_decref(s);
    return 0;
}

/* jansson's messages quote the token where parsing stopped ("near
 * '\"Dupont'"): that text is the input's, it may be personal data, and the
 * message goes to logs and to the rejections table. Keep a one-character
 * token (a brace, a comma); say only the kind of any longer one. */
static void quote_safely(char *text, size_t size)
{
    char *near = strstr(text, " near '");
    if (!near) return;
    const char *tok = near + 7;
    size_t n = strlen(tok);
    if (n >= 1 && tok[n - 1] == '\'') n--;
    if (n <= 1) return;
    snprintf(near, size - (size_t)(near - text), " near %s (not quoted: input text stays out of messages)",
             tok[0] == '"' ? "a string" : (tok[0] >= '0' && tok[0] <= '9') || tok[0] == '-' ? "a number" : "a word");
}

json_t *relais_json_parse(const char *buf, size_t len, const char *name,
                          const relais_parse_limits *lim, char *errstr, size_t errlen)
{
    if (!name) name = "input";
    if (errstr && errlen) errstr[0] = '\0';
    if (!buf) {
        buf = "";
        len = 0;
    }
    size_t max = lim_bytes(lim);
    if (len > max) {
        set_err(errstr, errlen, "%s: %zu bytes, larger than the %zu allowed", name, len, max);
        return NULL;
    }
    int depth = lim_depth(lim), line = 0, column = 0;
    if (json_depth_scan(buf, len, depth, &line, &column) != 0) {
        set_err(errstr, errlen, "%s:%d:%d: nesting deeper than %d levels", name, line, column,
                depth);
        return NULL;
    }
    json_error_t err;
    json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &err);
    if (v) return v;
    line = err.line > 0 ? err.line : 1;
    column = err.column > 0 ? err.column : 1;
    char key[96];
    if (json_error_code(&err) == json_error_duplicate_key &&
        duplicate_key(buf, len, &err, key, sizeof key) == 0)
        set_err(errstr, errlen, "%s:%d:%d: duplicate object key '%s'", name, line, column, key);
    else if (strstr(err.text, "\\u0000"))
        set_err(errstr, errlen, "%s:%d:%d: a NUL character (\\u0000) is not allowed in a string", name, line, column);
    else {
        int utf8 = json_error_code(&err) == json_error_invalid_utf8 || strstr(err.text, "unable to decode byte");
        quote_safely(err.text, sizeof err.text);
        if (utf8) set_err(errstr, errlen, "%s:%d:%d: invalid UTF-8 (%s)", name, line, column, err.text);
        else set_err(errstr, errlen, "%s:%d:%d: %s", name, line, column, err.text);
    }
    return NULL;
}
