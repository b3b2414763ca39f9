/*
 * fuzz_tokens.c - libFuzzer target for the admin API's tokens file parser
 * (hub/tokens.c, relais_tokens_parse) and the Authorization header parser
 * (relais_bearer_token), both fed the input bytes.
 * Invariants: the parser returns NULL exactly when it wrote an error; an
 * error names the file ("fuzz:...") and is printable ASCII (it goes to logs
 * and terminals); a table accepted looks tokens up without fault and never
 * takes the empty token; a bearer token found lies inside the header, is
 * not empty and holds only token68 characters.
 *
 * Build: see tests/fuzz/CMakeLists.txt (-DRELAIS_FUZZ=ON with clang).
 * Run:   fuzz_tokens tests/fuzz/corpus/tokens
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
    if (!cond) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    err[0] = 'x';
    err[1] = '\0';
    relais_tokens *t = relais_tokens_parse("fuzz", (const char *)data, size, err, sizeof err);
    if (t) {
        check(err[0] == '\0');
        check(relais_tokens_count(t) <= size / 72 + 1);   /* a line is at least "a auditor sha256:" + 64 */
        const char *who = NULL;
        relais_role role = RELAIS_ROLE_NONE;
        if (relais_tokens_check(t, (const char *)data, size, &who, &role) == 0)
            check(who && relais_token_name_valid(who) && role >= RELAIS_ROLE_AUDITOR && role <= RELAIS_ROLE_ADMIN);
        check(relais_tokens_check(t, "", 0, NULL, NULL) == -1);
        relais_tokens_destroy(t);
    } else {
        check(strncmp(err, "fuzz:", 5) == 0);
        for (const char *p = err; *p; p++) check(*p >= 0x20 && *p < 0x7f);
    }

    char *hdr = malloc(size + 1);
    if (!hdr) return 0;
    memcpy(hdr, data, size);
    hdr[size] = '\0';
    size_t len = 0;
    const char *tok = relais_bearer_token(hdr, &len);
    if (tok) {
        check(tok > hdr && tok + len <= hdr + strlen(hdr) && len > 0);
        for (size_t i = 0; i < len; i++)
            check(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=", tok[i]) != NULL);
    }
    free(hdr);
    return 0;
}
