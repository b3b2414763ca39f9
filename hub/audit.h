/*
 * audit.h - the tamper-evident trail (issue 7): pure functions, no database.
 *
 * A stream is an ordered list of journal entries written by one writer (one
 * lane of one hub process run). Entry n (seq 1, 2, ...) carries
 *   hash_n = SHA-256( prev_hash || "\n" || canonical bytes of the entry )
 *   mac_n  = HMAC-SHA256( key, stream || "\n" || seq || "\n" || hash_n )
 * with prev_hash of entry 1 = 64 zeros. The key is held outside the
 * database (a file readable by the hub only): someone who can write to the
 * database cannot compute a valid MAC, so a rewritten chain is detected.
 *
 * A hash chain alone does not show that its tail was cut off: checkpoints
 * (stream, seq, hash, at), MACed with the same key, are also written outside
 * the database (an append-only file); verification compares them with the
 * journal.
 *
 * Canonical bytes: JSON, compact, keys sorted, reals with 17 significant
 * digits (what jansson writes for JSON_COMPACT | JSON_SORT_KEYS), so that an
 * entry read back from PostgreSQL (jsonb) gives the bytes it was hashed from.
 *
 * Thread-safety: every function is pure (or reads only its arguments).
 */
#ifndef RELAIS_AUDIT_H
#define RELAIS_AUDIT_H
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#define RELAIS_AUDIT_HEX 65                 /* 64 hex digits and a NUL */
#define RELAIS_AUDIT_KEY_MIN 32             /* bytes */

/* Canonical bytes of a JSON value (malloc'd, NUL-terminated; *len without
 * the NUL). NULL on error. */
char *relais_audit_canonical(const json_t *v, size_t *len);

/* The chain hash of an entry: hex of SHA-256(prev || "\n" || bytes). prev is
 * the previous entry's hash (64 hex digits), or NULL/"" for the first. */
void relais_audit_chain(const char *prev, const void *bytes, size_t len, char out[RELAIS_AUDIT_HEX]);

/* The MAC of entry `seq` of `stream` whose hash is `hash`. 0, or -1 when the
 * key is shorter than RELAIS_AUDIT_KEY_MIN. */
int relais_audit_mac(const unsigned char *key, size_t keylen, const char *stream, int64_t seq,
                     const char *hash, char out[RELAIS_AUDIT_HEX]);

/* Read the audit key from a file: 64 or more hex digits (a trailing newline
 * allowed), at least RELAIS_AUDIT_KEY_MIN bytes once decoded. Refused when
 * the file is readable by group or others. 0 with *key (malloc'd) and
 * *keylen, or -1 with errstr naming the file and the fault. */
int relais_audit_key_load(const char *path, unsigned char **key, size_t *keylen, char *errstr, size_t errlen);

/* One entry as the verifier sees it. */
typedef struct relais_audit_entry {
    int64_t     seq;
    const char *prev;        /* stored prev_hash */
    const char *hash;        /* stored hash */
    const char *mac;         /* stored mac */
    const char *bytes;       /* canonical bytes recomputed from the stored row */
    size_t      len;
    const char *ref;         /* what the entry is, for the report ("event 0190...", "step 42") */
} relais_audit_entry;

/* A checkpoint read from outside the database. */
typedef struct relais_audit_checkpoint {
    int64_t     seq;
    const char *hash;
    const char *mac;         /* relais_audit_mac(key, stream, seq, hash) */
} relais_audit_checkpoint;

typedef enum relais_audit_fault {
    RELAIS_AUDIT_OK = 0,
    RELAIS_AUDIT_MODIFIED,   /* an entry's content no longer gives its hash */
    RELAIS_AUDIT_DELETED,    /* a sequence number is missing */
    RELAIS_AUDIT_INSERTED,   /* an entry that the key did not sign (or a repeated number) */
    RELAIS_AUDIT_REORDERED,  /* genuine entries whose links no longer follow */
    RELAIS_AUDIT_TRUNCATED,  /* a checkpoint names an entry beyond the end of the stream */
    RELAIS_AUDIT_REWRITTEN   /* a checkpoint's hash is not the stream's at its seq */
} relais_audit_fault;

typedef struct relais_audit_report {
    relais_audit_fault fault;
    int64_t            seq;        /* where (the first faulty entry, or the checkpoint's seq) */
    char               ref[160];   /* the entry's ref when known */
    char               detail[256];
} relais_audit_report;

/* Verify one stream: entries in stored order (by seq), then its checkpoints
 * (any order). Fills report with the FIRST fault met, in stream order; a
 * checkpoint with a wrong MAC is ignored and said in detail only when
 * nothing else is wrong. `first_seq`: the seq the entries start at (1, or
 * the first kept after an authorised purge of old entries). Returns 0 when
 * the stream verifies, 1 when a fault was found. */
int relais_audit_verify_stream(const unsigned char *key, size_t keylen, const char *stream,
                               int64_t first_seq, const char *first_prev,
                               const relais_audit_entry *entries, size_t n,
                               const relais_audit_checkpoint *cps, size_t ncp,
                               relais_audit_report *report);

const char *relais_audit_fault_name(relais_audit_fault f);

/* Make the key file when it does not exist yet: 32 random bytes as hex,
 * mode 0600, created exclusively (O_EXCL). 0 (made or already there), or -1
 * with errstr naming the file. *made is set to 1 when the file was made. */
int relais_audit_key_ensure(const char *path, int *made, char *errstr, size_t errlen);

/* ---- checkpoints: the witness outside the database ---- */

/* One line of the checkpoint file (NUL-terminated, ending in "\n"):
 *   {"at":"<RFC 3339>","hash":"..","mac":"..","seq":N,"stream":".."}
 * malloc'd, NULL on error. */
char *relais_audit_checkpoint_line(const unsigned char *key, size_t keylen, const char *stream, int64_t seq,
                                   const char *hash, int64_t at_us);

typedef struct relais_audit_cp {
    char   *stream;
    int64_t seq;
    int64_t at_us;
    char    hash[RELAIS_AUDIT_HEX];
    char    mac[RELAIS_AUDIT_HEX];
    int     line;
} relais_audit_cp;

typedef struct relais_audit_cplist {
    relais_audit_cp *v;
    size_t           n, cap;
} relais_audit_cplist;

/* Read checkpoint lines from a buffer; `name` stands for the file in
 * messages. A line that is not a checkpoint is an error "NAME:LINE: ..."
 * (except a last line cut short by a crash, which is skipped and counted in
 * *torn when torn is not NULL). 0, or -1 with errstr. */
int  relais_audit_checkpoints_parse(const char *name, const char *buf, size_t len, relais_audit_cplist *out,
                                    int *torn, char *errstr, size_t errlen);
/* Same from a file; a missing file is an empty list. */
int  relais_audit_checkpoints_load(const char *path, relais_audit_cplist *out, int *torn,
                                   char *errstr, size_t errlen);
void relais_audit_cplist_free(relais_audit_cplist *l);
#endif
