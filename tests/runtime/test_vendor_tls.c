/*
 * test_vendor_tls.c - the TLS options of the publik and worksite connectors
 * (tls_ca_file, tls_verify: RELAIS_HTTP_TLS_OPTIONS in hub/httputil.h), from
 * YAML through each connector's real option table to a real handshake with
 * `openssl s_server -www` on 127.0.0.2, whose certificate is self-signed:
 *
 *   - without tls_ca_file the call fails on the certificate (no HTTP answer);
 *   - with tls_ca_file naming that certificate the handshake succeeds and
 *     s_server's status page comes back (HTTP 200);
 *   - tls_verify: false gets the answer too;
 *   - a tls_ca_file that cannot be read is refused when the client is made,
 *     naming the file.
 *
 * s_server is started once for the group (fork/exec, port 0, its port read
 * from its "ACCEPT 127.0.0.2:PORT" line) and killed at teardown.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include "testsupport.h"
#include "options.h"
#include "yamltree.h"
#include "errlist.h"
#include "../../connectors/publik/publik_int.h"
#include "../../connectors/worksite/worksite_int.h"

extern const relais_connector relais_connector_publik;
extern const relais_connector relais_connector_worksite;

static struct {
    char  dir[64];
    char  cert[128];
    pid_t pid;
    int   port;
} S;

static int run_quiet(char *const argv[])
{
    pid_t p = fork();
    if (p == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) { dup2(fd, 1); dup2(fd, 2); }
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    if (p < 0 || waitpid(p, &st, 0) != p) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int server_setup(void **state)
{
    (void)state;
    setenv("VTLS_SECRET", "k-relais-vtls", 1);   /* secrets come as env:NAME */
    snprintf(S.dir, sizeof S.dir, "/tmp/relais-vtls-XXXXXX");
    if (!mkdtemp(S.dir)) return -1;
    char key[128], out[128], subj[] = "/CN=relais-test", san[] = "subjectAltName=IP:127.0.0.2";
    snprintf(S.cert, sizeof S.cert, "%s/cert.pem", S.dir);
    snprintf(key, sizeof key, "%s/key.pem", S.dir);
    char *req[] = { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", S.cert,
                    "-days", "2", "-subj", subj, "-addext", san, NULL };
    if (run_quiet(req) != 0) { fprintf(stderr, "openssl req failed\n"); return -1; }

    snprintf(out, sizeof out, "%s/s_server.out", S.dir);
    S.pid = fork();
    if (S.pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600), in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0) _exit(127);
        dup2(in, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        char acc[] = "127.0.0.2:0";
        char *argv[] = { "openssl", "s_server", "-accept", acc, "-cert", S.cert, "-key", key, "-www", NULL };
        execvp(argv[0], argv);
        _exit(127);
    }
    if (S.pid < 0) return -1;
    for (int i = 0; i < 100 && !S.port; i++) {   /* 10 s */
        ts_sleep_ms(100);
        FILE *f = fopen(out, "r");
        char line[256];
        while (f && fgets(line, sizeof line, f))
            if (sscanf(line, "ACCEPT 127.0.0.2:%d", &S.port) == 1) break;
        if (f) fclose(f);
    }
    if (!S.port) { fprintf(stderr, "s_server did not say where it listens\n"); return -1; }
    return 0;
}

static int server_teardown(void **state)
{
    (void)state;
    if (S.pid > 0) {
        kill(S.pid, SIGTERM);
        waitpid(S.pid, NULL, 0);
    }
    char *rm[] = { "rm", "-rf", S.dir, NULL };
    run_quiet(rm);
    return 0;
}

/* Fills cfg from YAML through the connector's option table; 0 or -1. */
static int apply(const relais_connector *conn, void *cfg, unsigned mode, const char *yaml)
{
    char err[256];
    yt_node *map = yt_load_buffer("test.yaml", yaml, strlen(yaml), err, sizeof err);
    assert_non_null(map);
    relais_errlist errs;
    relais_errlist_init(&errs);
    int rc = relais_options_apply(conn->options, cfg, mode, map, NULL, "test.yaml", &errs);
    if (rc != 0) fprintf(stderr, "options: %s\n", errs.count ? errs.msgs[0] : "?");
    relais_errlist_free(&errs);
    yt_free(map);
    return rc;
}

/* tls: extra YAML line ("" for none). Returns the HTTP status, 0 with the
 * transport error in err, or -2 when the client was refused (err: why). */
static long worksite_get(const char *tls, char *err, size_t errlen)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml, "url: https://127.0.0.2:%d\ntoken: env:VTLS_SECRET\ntimeout: 5s\n%s\n", S.port, tls);
    relais_worksite_config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(apply(&relais_connector_worksite, &cfg, RELAIS_MODE_SINK, yaml), 0);
    ws_client *c = ws_client_new(NULL, &cfg, err, errlen);
    relais_options_free(relais_connector_worksite.options, &cfg);
    if (!c) return -2;
    ws_response r;
    int rc = ws_client_call(c, "GET", "/api/v1/interventions", NULL, 0, NULL, &r);
    long status = rc == 0 ? r.status : 0;
    if (rc != 0) snprintf(err, errlen, "%s", r.error);
    ws_response_free(&r);
    ws_client_destroy(c);
    return status;
}

static long publik_get(const char *tls, char *err, size_t errlen)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "url: https://127.0.0.2:%d\norig: relais\nkey: env:VTLS_SECRET\nformdefs: [signalement]\ntimeout: 5s\n%s\n",
             S.port, tls);
    relais_publik_config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_int_equal(apply(&relais_connector_publik, &cfg, RELAIS_MODE_SINK, yaml), 0);
    relais_publik_client *c = relais_publik_client_new(NULL, &cfg, err, errlen);
    relais_options_free(relais_connector_publik.options, &cfg);
    if (!c) return -2;
    relais_publik_reply r;
    int rc = relais_publik_call(c, "GET", "/api/formdefs/", NULL, NULL, NULL, &r);
    long status = rc == 0 ? r.status : 0;
    if (rc != 0) snprintf(err, errlen, "%s", r.error);
    relais_publik_reply_free(&r);
    relais_publik_client_destroy(c);
    return status;
}

typedef long (*getter)(const char *tls, char *err, size_t errlen);

static void check_tls(getter get)
{
    char err[512] = "", line[256];

    /* the system's CA store does not know the self-signed certificate */
    assert_int_equal(get("", err, sizeof err), 0);
    if (!strstr(err, "certificate")) fail_msg("without tls_ca_file: '%s'", err);

    /* the certificate as the CA: handshake, and s_server's page */
    snprintf(line, sizeof line, "tls_ca_file: %s", S.cert);
    err[0] = '\0';
    long st = get(line, err, sizeof err);
    if (st != 200) fail_msg("with tls_ca_file: status %ld, '%s'", st, err);

    /* verification off: the answer too */
    assert_int_equal(get("tls_verify: false", err, sizeof err), 200);

    /* a CA file that cannot be read: refused when the client is made */
    snprintf(line, sizeof line, "tls_ca_file: %s/missing.pem", S.dir);
    assert_int_equal(get(line, err, sizeof err), -2);
    if (!strstr(err, "missing.pem")) fail_msg("unreadable tls_ca_file: '%s'", err);
}

static void test_worksite_tls(void **state)
{
    (void)state;
    check_tls(worksite_get);
}

static void test_publik_tls(void **state)
{
    (void)state;
    check_tls(publik_get);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worksite_tls),
        cmocka_unit_test(test_publik_tls),
    };
    return cmocka_run_group_tests(tests, server_setup, server_teardown);
}
