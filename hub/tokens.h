/*
 * tokens.h - the admin API's roles and bearer tokens (issue 7; docs/SECURITY.md
 * "Roles and tokens").
 *
 * Roles are ordered, each includes the rights of the one before:
 *   auditor   reads: metrics, traces, the dead-letter queue, a person's data
 *   operator  an auditor who may also replay and discard dead deliveries, and pause and resume connectors
 *   admin     an operator who may also reload mappings (and, in tests, inject faults)
 *
 * The tokens file (hub.admin_tokens) holds one token per line:
 *   <name> <role> sha256:<64 hex digits>
 * separated by spaces or tabs; lines whose first non-blank character is '#'
 * and blank lines are ignored. The raw token is never stored, only the
 * SHA-256 of its text: tokens are 256 random bits, so a plain hash cannot be
 * reversed or guessed (no salt or slow hash needed, unlike passwords). The
 * file must not be readable by group or others.
 *
 * Pure functions and an immutable table: a relais_tokens is read-only after
 * relais_tokens_parse/load, so any number of threads may call
 * relais_tokens_check on it at once.
 */
#ifndef RELAIS_TOKENS_H
#define RELAIS_TOKENS_H
#include <stddef.h>

typedef enum relais_role {
    RELAIS_ROLE_NONE = 0,        /* no right (public routes need none) */
    RELAIS_ROLE_AUDITOR = 1,
    RELAIS_ROLE_OPERATOR = 2,
    RELAIS_ROLE_ADMIN = 3
} relais_role;

#define RELAIS_TOKEN_NAME_MAX 64          /* bytes of a token's name */
#define RELAIS_TOKENS_FILE_MAX (1 << 20)  /* bytes of a tokens file */
#define RELAIS_TOKEN_PREFIX "relais_"     /* raw tokens: prefix + 43 base64url characters */
#define RELAIS_TOKEN_BUF 64               /* room for a raw token and its NUL */
#define RELAIS_TOKEN_LINE_BUF 160         /* room for a file line and its NUL */

/* "auditor", "operator", "admin", or "none". */
const char *relais_role_name(relais_role r);
/* 0 and *out for "auditor", "operator" or "admin" (exactly); -1 otherwise. */
int relais_role_parse(const char *s, relais_role *out);
/* 1 when a caller holding `have` may call a route that needs `need`. */
int relais_role_allows(relais_role have, relais_role need);

/* 1 when s is a valid token name: 1..RELAIS_TOKEN_NAME_MAX characters among
 * letters, digits, '.', '_', '-' and '@'. */
int relais_token_name_valid(const char *s);

typedef struct relais_tokens relais_tokens;

/* Parse a tokens file held in memory; `name` stands for FILE in errors.
 * NULL with errstr "FILE:LINE: field 'role': ..." at the first bad line
 * (wrong number of fields, invalid name, unknown role, hash not
 * sha256:<64 hex>, duplicate name or token, NUL byte), or "FILE: ..." for
 * the whole file (larger than RELAIS_TOKENS_FILE_MAX). The hash field is
 * never quoted back (it could be a raw token pasted by mistake). A file
 * with no token line is valid: every call but the public ones is refused. */
relais_tokens *relais_tokens_parse(const char *name, const char *buf, size_t len, char *errstr, size_t errlen);
/* Read and parse `path`. Refused when it is not a regular file or when
 * group or others have any permission on it ("FILE: readable by others
 * (mode 640): chmod 600 it"). */
relais_tokens *relais_tokens_load(const char *path, char *errstr, size_t errlen);
void relais_tokens_destroy(relais_tokens *t);   /* NULL-safe */
size_t relais_tokens_count(const relais_tokens *t);

/* The entry whose hash is SHA-256(token[0..len)): 0 with *name (valid as
 * long as t) and *role; -1 when none or t is NULL. Every entry is compared
 * (CRYPTO_memcmp, no early exit). */
int relais_tokens_check(const relais_tokens *t, const char *token, size_t len, const char **name,
                        relais_role *role);

/* The token of an "Authorization: Bearer <token>" header value (scheme
 * case-insensitive, token68 characters only): a pointer into header and
 * *len, or NULL when the header is absent, of another scheme or malformed. */
const char *relais_bearer_token(const char *header, size_t *len);

/* A new token: 32 bytes from RAND_bytes, written as RELAIS_TOKEN_PREFIX +
 * base64url (no padding) into token[RELAIS_TOKEN_BUF], and the line to add
 * to the tokens file, "<name> <role> sha256:<hex>", into
 * line[RELAIS_TOKEN_LINE_BUF]. -1 with errstr for an invalid name or role
 * NONE, or when the random generator fails. */
int relais_token_new(const char *name, relais_role role, char token[RELAIS_TOKEN_BUF],
                     char line[RELAIS_TOKEN_LINE_BUF], char *errstr, size_t errlen);

/* 1 when an admin_listen "HOST:PORT" names a loopback IPv4 address
 * (127.0.0.0/8); 0 for any other address and for what does not parse. */
int relais_listen_is_loopback(const char *listen);
#endif
