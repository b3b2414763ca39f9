#include "testsupport.h"
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static char g_conninfo[512];

const char *ts_fresh_database(const char *name)
{
    const char *host = getenv("RELAIS_TEST_PGHOST");
    const char *port = getenv("RELAIS_TEST_PGPORT");
    if (!host || !*host) {
        fail_msg("RELAIS_TEST_PGHOST is not set: run the suite with tools/test "
                 "(it starts a throw-away PostgreSQL)");
    }
    if (!port || !*port) port = "5432";
    char admin[512];
    snprintf(admin, sizeof admin, "host=%s port=%s dbname=postgres user=postgres", host, port);
    PGconn *c = PQconnectdb(admin);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot reach the test PostgreSQL (%s): %s", admin, PQerrorMessage(c));
    }
    static unsigned seq;
    char db[128];
    snprintf(db, sizeof db, "%s_%d_%u_%ld", name, (int)getpid(), seq++, (long)time(NULL) % 100000);
    for (char *p = db; *p; p++) if (*p == '-' || *p == '/') *p = '_';
    char sql[256];
    snprintf(sql, sizeof sql, "CREATE DATABASE \"%s\"", db);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fail_msg("CREATE DATABASE %s: %s", db, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    snprintf(g_conninfo, sizeof g_conninfo, "host=%s port=%s dbname=%s user=postgres", host, port, db);
    return g_conninfo;
}

char *ts_sql(const char *conninfo, const char *sql)
{
    PGconn *c = PQconnectdb(conninfo);
    if (PQstatus(c) != CONNECTION_OK) { PQfinish(c); return NULL; }
    PGresult *r = PQexec(c, sql);
    char *out = NULL;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
        out = strdup(PQntuples(r) > 0 && PQnfields(r) > 0 ? PQgetvalue(r, 0, 0) : "");
    } else if (st == PGRES_COMMAND_OK) {
        out = strdup("");
    } else {
        fprintf(stderr, "ts_sql: %s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
    PQfinish(c);
    return out;
}

long ts_sql_long(const char *conninfo, const char *sql)
{
    char *s = ts_sql(conninfo, sql);
    if (!s) fail_msg("SQL failed: %s", sql);
    long v = strtol(s, NULL, 10);
    free(s);
    return v;
}

const char *ts_source_path(const char *rel)
{
    static char buf[1024];
    const char *root = getenv("RELAIS_SOURCE_DIR");
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t l = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
        if (fd >= 0) close(fd);
        fail_msg("ts_free_port: cannot bind");
    }
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

char *ts_write_temp(const char *suffix, const char *text)
{
    static char paths[8][256];
    static unsigned slot;
    char *p = paths[slot++ % 8];
    snprintf(p, 256, "/tmp/relais-test-XXXXXX%s", suffix ? suffix : "");
    int fd = mkstemps(p, suffix ? (int)strlen(suffix) : 0);
    if (fd < 0) fail_msg("mkstemps failed");
    size_t n = strlen(text);
    if (write(fd, text, n) != (ssize_t)n) fail_msg("write failed");
    close(fd);
    return p;
}

void ts_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}
