/*
 * open311_http.c - libmicrohttpd pieces shared by the GeoReport v2 server
 * (open311_server.c) and the simulator (sim_open311.c): the POSTed form read
 * with libmicrohttpd's own post processor (application/x-www-form-urlencoded
 * as the spec says, multipart/form-data as some clients send it), answers
 * in JSON or XML with the spec's content types and errors body, the
 * GeoReport URL shape (<prefix>/<path>.<format>) and the listening daemon.
 *
 * Threads: an o311_upload belongs to the connection thread that reads the
 * request; the other functions keep no state.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include "open311_int.h"
#include "httputil.h"

/* ---- The POSTed form ------------------------------------------------------- */

static enum MHD_Result on_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
                                const char *content_type, const char *transfer_encoding, const char *data,
                                uint64_t off, size_t size)
{
    o311_upload *u = cls;
    if (filename) return MHD_YES;            /* a file part (a photo): not a GeoReport field */
    if (!key) return MHD_YES;
    o311_field *last = u->n ? &u->f[u->n - 1] : NULL;
    if (off == 0 || !last || strcmp(last->key, key) != 0) {
        if (u->n >= 2 * O311_MAX_FIELDS) {
            u->too_many = 1;
            return MHD_YES;
        }
        if (u->n == u->cap) {
            size_t nc = u->cap ? u->cap * 2 : 16;
            o311_field *nf = realloc(u->f, nc * sizeof *nf);
            if (!nf) return MHD_NO;
            u->f = nf;
            u->cap = nc;
        }
        last = &u->f[u->n];
        memset(last, 0, sizeof *last);
        last->key = strdup(key);
        if (!last->key) return MHD_NO;
        u->n++;
    }
    if (size > 0) {
        char *nv = realloc(last->val, last->len + size + 1);
        if (!nv) return MHD_NO;
        memcpy(nv + last->len, data, size);
        last->val = nv;
        last->len += size;
        nv[last->len] = '\0';
    }
    return MHD_YES;
}

void o311_upload_begin(o311_upload *u, struct MHD_Connection *c, size_t max)
{
    memset(u, 0, sizeof *u);
    u->max = max;
    u->pp = MHD_create_post_processor(c, 16 * 1024, on_field, u);
    if (!u->pp) u->bad_type = 1;
}

void o311_upload_feed(o311_upload *u, const char *data, size_t size)
{
    if (u->bad_type || u->too_large || u->bad_form) return;
    if (size > u->max - u->bytes) {
        u->too_large = 1;
        return;
    }
    u->bytes += size;
    if (MHD_post_process(u->pp, data, size) != MHD_YES) u->bad_form = 1;
}

void o311_upload_finish(o311_upload *u)
{
    if (u->pp && MHD_destroy_post_processor(u->pp) != MHD_YES) u->bad_form = 1;
    u->pp = NULL;
}

void o311_upload_free(o311_upload *u)
{
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    for (size_t i = 0; i < u->n; i++) {
        free(u->f[i].key);
        free(u->f[i].val);
    }
    free(u->f);
    memset(u, 0, sizeof *u);
}

const char *o311_upload_problem(const o311_upload *u, unsigned *status)
{
    *status = MHD_HTTP_BAD_REQUEST;
    if (u->bad_type) return "the body must be application/x-www-form-urlencoded (or multipart/form-data)";
    if (u->too_large) {
        *status = MHD_HTTP_CONTENT_TOO_LARGE;
        return "the body is too large";
    }
    if (u->bad_form) return "the body is not a valid form";
    if (u->too_many) return "too many fields";
    return NULL;
}

/* ---- Answers ---------------------------------------------------------------- */

enum MHD_Result o311_reply(struct MHD_Connection *c, unsigned status, o311_format fmt, const json_t *v,
                           const char *root, int retry_after)
{
    size_t len = 0;
    char *body = o311_render(v, fmt, root, &len);
    if (!body) {
        static const char oom[] = "[{\"code\":500,\"description\":\"out of memory\"}]";
        body = strdup(oom);
        len = body ? strlen(body) : 0;
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        fmt = O311_JSON;
        if (!body) return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, o311_content_type(fmt));
    if (retry_after) MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result o311_reply_error(struct MHD_Connection *c, unsigned status, o311_format fmt,
                                 const char *description, int retry_after)
{
    json_t *e = o311_errors((int)status, description);
    enum MHD_Result ret = o311_reply(c, status, fmt, e, "errors", retry_after);
    json_decref(e);
    return ret;
}

/* ---- URLs --------------------------------------------------------------------- */

int o311_split_url(const char *url, const char *prefix, char *path, size_t len, o311_format *fmt)
{
    size_t pl = prefix ? strlen(prefix) : 0;
    while (pl > 0 && prefix[pl - 1] == '/') pl--;
    if (pl > 0 && (strncmp(url, prefix, pl) != 0 || url[pl] != '/')) return 1;
    const char *p = url + pl;
    const char *slash = strrchr(p, '/');
    const char *dot = strrchr(p, '.');
    *fmt = O311_JSON;
    if (!dot || (slash && dot < slash)) return 2;
    if (!strcmp(dot, ".json")) *fmt = O311_JSON;
    else if (!strcmp(dot, ".xml")) *fmt = O311_XML;
    else return 2;
    size_t n = (size_t)(dot - p);
    if (n >= len) return 1;
    memcpy(path, p, n);
    path[n] = '\0';
    return 0;
}

const char *o311_path_arg(const char *path, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(path, base, n) != 0 || path[n] != '/' || !path[n + 1] || strchr(path + n + 1, '/')) return NULL;
    return path + n + 1;
}

/* ---- The daemon ------------------------------------------------------------------ */

struct MHD_Daemon *o311_listen(const char *listen, MHD_AccessHandlerCallback handler, void *cls,
                               MHD_RequestCompletedCallback done, unsigned conn_limit, int *port,
                               char *errstr, size_t errlen)
{
    char host[256];
    int p;
    if (relais_http_split_listen(listen, host, sizeof host, &p, errstr, errlen) != 0) return NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", p);
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE };
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || !ai) {
        snprintf(errstr, errlen, "listen '%s': %s", listen, gai_strerror(gai));
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_AUTO;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    struct MHD_Daemon *d = MHD_start_daemon(flags, (uint16_t)p, NULL, NULL, handler, cls,
                                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                            MHD_OPTION_NOTIFY_COMPLETED, done, cls,
                                            MHD_OPTION_CONNECTION_LIMIT, conn_limit,
                                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                            MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        snprintf(errstr, errlen, "cannot listen on %s (address in use or not local?)", listen);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *port = info ? (int)info->port : p;
    return d;
}

int o311_write_port_file(const char *file, int port, char *errstr, size_t errlen)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        snprintf(errstr, errlen, "port file %s: %s", tmp, strerror(errno));
        return -1;
    }
    int bad = fprintf(f, "%d\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, file) != 0) {
        snprintf(errstr, errlen, "port file %s: %s", file, strerror(errno));
        remove(tmp);
        return -1;
    }
    return 0;
}
