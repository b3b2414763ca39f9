/*
 * notify_smtpd.h - the server side of an SMTP session (RFC 5321 subset:
 * EHLO/HELO, AUTH PLAIN, MAIL FROM, RCPT TO, DATA with dot-stuffing, RSET,
 * NOOP, VRFY, HELP, QUIT), and the decoding of a received RFC 5322 message
 * (unfolded headers, RFC 2047 encoded-words, quoted-printable or base64
 * bodies). Used by relais-sim-smtp (sim_smtp.c); pure (no sockets) so that
 * tests/fuzz/fuzz_notify_smtp.c can feed it anything.
 *
 * A session belongs to one connection thread; the hooks are called on that
 * thread.
 */
#ifndef RELAIS_NOTIFY_SMTPD_H
#define RELAIS_NOTIFY_SMTPD_H
#include <stddef.h>
#include <jansson.h>
#include "notify_int.h"

/* Longest line (RFC 5321 4.5.3.1.6: 1000 octets with the CRLF). */
#define NOTIFY_SMTPD_LINE_MAX 1000

typedef enum notify_smtpd_stage {
    NOTIFY_SMTPD_RCPT = 0,   /* answering a RCPT TO */
    NOTIFY_SMTPD_DATA = 1    /* answering DATA */
} notify_smtpd_stage;

typedef struct notify_smtpd_hooks {
    /* Reply code to answer instead of success at this stage (an injected
     * failure: 4xx or 5xx), 0 for none. May be NULL. */
    int (*fail)(void *cls, notify_smtpd_stage stage);
    /* A message was accepted: envelope sender, recipients (JSON array of
     * strings, borrowed), the data without dot-stuffing (CRLF line ends).
     * Writes the queue id into id. May be NULL. */
    void (*message)(void *cls, const char *from, json_t *rcpts, const char *data, size_t len,
                    char *id, size_t idlen);
    void *cls;
} notify_smtpd_hooks;

typedef struct notify_smtpd notify_smtpd;

/* user/password: AUTH PLAIN required before MAIL when user is not NULL.
 * max_size: largest message accepted (552 above; advertised as SIZE). */
notify_smtpd *notify_smtpd_new(const char *hostname, const notify_smtpd_hooks *hooks, size_t max_size,
                               const char *user, const char *password);
void notify_smtpd_free(notify_smtpd *s);   /* NULL: no-op */

/* The 220 greeting, appended to out. */
void notify_smtpd_greeting(notify_smtpd *s, notify_buf *out);

/* One line received without its line end (len bytes, may hold any byte);
 * too_long: the line was cut at NOTIFY_SMTPD_LINE_MAX. Appends the reply
 * (CRLF-terminated lines; nothing inside DATA) to out. Returns 1 when the
 * connection must be closed once out is sent (QUIT, too many errors). */
int notify_smtpd_line(notify_smtpd *s, const char *line, size_t len, int too_long, notify_buf *out);

/* Decode an RFC 5322 message: a new object {"headers": {lower-case name:
 * unfolded value, first occurrence}, "subject", "header_from", "header_to",
 * "message_id", "date", "content_type", "transfer_encoding" (those present),
 * "body": the decoded text with "\n" line ends}. Text that is not valid
 * UTF-8 gets '?' for the bad bytes. NULL only on out of memory. */
json_t *notify_smtpd_decode(const char *data, size_t len);

/* RFC 2047: a header value with its encoded-words (B or Q, UTF-8 or
 * US-ASCII) decoded; other charsets are left as written. New string. */
char *notify_smtpd_decode_words(const char *value, size_t len);

#endif
