/*
 * fuzz_xml.c - libFuzzer target over relais_xml_parse (hub/safeparse.c),
 * the only parser of outside XML.
 *
 * Input: an XML document. It is parsed twice, with the default limits and
 * with tight ones (depth 8, 4 KiB). A refusal must come with a clean error
 * text ("name:..." , valid UTF-8, no control characters). An accepted
 * document must carry no DTD, no entity node, no CDATA node (CDATA is
 * merged as text), no element deeper than the limit, and only UTF-8 names
 * and text; it is then serialised once.
 * Seeds: tests/fuzz/corpus/xml/ (Cityweb, PayFiP and Open311 samples plus
 * hostile documents: XXE, billion laughs, parameter entities, XInclude,
 * deep nesting, bad encodings).
 *
 * Build and run by hand:
 *   CC=clang cmake -S . -B build-fuzz -DRELAIS_FUZZ=ON -DRELAIS_SANITIZE=ON -DRELAIS_TESTS=OFF
 *   cmake --build build-fuzz --target fuzz_xml
 *   build-fuzz/tests/fuzz/fuzz_xml -max_total_time=60 tests/fuzz/corpus/xml
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <libxml/tree.h>
#include <libxml/xmlstring.h>
#include "safeparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

static void check_error(const char *err)
{
    check(strncmp(err, "fuzz.xml:", 9) == 0);
    check(xmlCheckUTF8((const xmlChar *)err));
    for (const char *p = err; *p; p++) check((unsigned char)*p >= 0x20 && *p != 0x7f);
}

static void walk(xmlNodePtr n, int depth, int max_depth, size_t *count)
{
    for (; n; n = n->next) {
        (*count)++;
        switch (n->type) {
        case XML_ELEMENT_NODE:
            check(depth + 1 <= max_depth);
            check(n->name && xmlCheckUTF8(n->name));
            for (xmlAttrPtr a = n->properties; a; a = a->next) {
                check(a->name && xmlCheckUTF8(a->name));
                xmlChar *v = xmlNodeGetContent((xmlNodePtr)a);
                check(v == NULL || xmlCheckUTF8(v));
                xmlFree(v);
            }
            walk(n->children, depth + 1, max_depth, count);
            break;
        case XML_TEXT_NODE:
        case XML_COMMENT_NODE:
        case XML_PI_NODE:
            check(n->content == NULL || xmlCheckUTF8(n->content));
            break;
        case XML_CDATA_SECTION_NODE:
        case XML_ENTITY_REF_NODE:
        case XML_ENTITY_NODE:
        case XML_ENTITY_DECL:
        case XML_DTD_NODE:
        case XML_XINCLUDE_START:
        case XML_XINCLUDE_END:
            abort();
        default:
            break;
        }
    }
}

static void one(const char *buf, size_t len, const relais_parse_limits *lim, int max_depth)
{
    char err[512];
    xmlDocPtr d = relais_xml_parse(buf, len, "fuzz.xml", lim, err, sizeof err);
    if (!d) {
        check_error(err);
        return;
    }
    check(d->intSubset == NULL && d->extSubset == NULL);
    check(xmlDocGetRootElement(d) != NULL);
    size_t count = 0;
    walk(d->children, 0, max_depth, &count);
    xmlChar *out = NULL;
    int n = 0;
    xmlDocDumpMemory(d, &out, &n);
    xmlFree(out);
    xmlFreeDoc(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    relais_safeparse_init();   /* once; later calls return at once */
    one((const char *)data, size, NULL, 64);
    relais_parse_limits tight = { .max_bytes = 4096, .max_depth = 8 };
    one((const char *)data, size, &tight, 8);
    return 0;
}
