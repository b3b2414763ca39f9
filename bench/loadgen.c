/*
 * loadgen.c - HTTP load generator for the webhook source.
 *
 *   relais-loadgen URL TOTAL [--batch B] [--conns C] [--rate R] [--prefix P] [--size BYTES]
 *
 * Sends TOTAL records as JSON arrays of B records per POST over C keep-alive
 * connections (one thread each). --rate R paces the whole run to R records
 * per second (0 = as fast as possible). Each record is
 * {"id":"<P>-<n>","category":"voirie","description":"..."} padded to about
 * BYTES bytes. Prints one JSON line: {"sent":N,"ok":N,"failed":N,"seconds":S,"rate":R}.
 * A POST answered 503 is retried after its Retry-After (nothing is lost).
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    const char *url;
    long        total, batch, rate, size, conns;
    const char *prefix;
    atomic_long next;
    atomic_long ok, failed;
    double      t0;
} job;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static void *run(void *arg)
{
    job *j = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t cap = (size_t)j->batch * ((size_t)j->size + 64) + 16;
    char *body = malloc(cap);
    char *pad = malloc((size_t)j->size + 1);
    memset(pad, 'x', (size_t)j->size);
    pad[j->size > 80 ? j->size - 80 : 0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, j->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    for (;;) {
        long first = atomic_fetch_add(&j->next, j->batch);
        if (first >= j->total) break;
        long n = first + j->batch > j->total ? j->total - first : j->batch;
        if (j->rate > 0) {
            double due = j->t0 + (double)first / (double)j->rate;
            double wait = due - now_s();
            if (wait > 0) {
                struct timespec ts = { (time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9) };
                nanosleep(&ts, NULL);
            }
        }
        size_t len = 0;
        if (j->batch > 1) body[len++] = '[';
        for (long i = 0; i < n; i++) {
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"id\":\"%s-%ld\",\"category\":\"voirie\",\"description\":\"%s\"}",
                                    i ? "," : "", j->prefix, first + i, pad);
        }
        if (j->batch > 1) body[len++] = ']';
        body[len] = '\0';
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
        for (int tries = 0;; tries++) {
            long code = 0;
            CURLcode rc = curl_easy_perform(c);
            if (rc == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
            if (code == 202) { atomic_fetch_add(&j->ok, n); break; }
            if (tries > 50) { atomic_fetch_add(&j->failed, n); break; }
            struct timespec ts = { 0, 200 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    free(body);
    free(pad);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: relais-loadgen URL TOTAL [--batch B] [--conns C] [--rate R] [--prefix P] [--size BYTES]\n");
        return 2;
    }
    job j;
    memset(&j, 0, sizeof j);
    j.url = argv[1];
    j.total = atol(argv[2]);
    j.batch = 100;
    j.conns = 4;
    j.size = 300;
    j.prefix = "L";
    for (int i = 3; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--batch") == 0) j.batch = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--conns") == 0) j.conns = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0) j.rate = atol(argv[i + 1]);
        else if (strcmp(argv[i], "--prefix") == 0) j.prefix = argv[i + 1];
        else if (strcmp(argv[i], "--size") == 0) j.size = atol(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (j.batch < 1) j.batch = 1;
    if (j.conns < 1) j.conns = 1;
    if (j.size < 100) j.size = 100;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t *t = calloc((size_t)j.conns, sizeof *t);
    j.t0 = now_s();
    for (long i = 0; i < j.conns; i++) pthread_create(&t[i], NULL, run, &j);
    for (long i = 0; i < j.conns; i++) pthread_join(t[i], NULL);
    double secs = now_s() - j.t0;
    printf("{\"sent\":%ld,\"ok\":%ld,\"failed\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", j.total,
           atomic_load(&j.ok), atomic_load(&j.failed), secs, (double)atomic_load(&j.ok) / secs);
    free(t);
    curl_global_cleanup();
    return atomic_load(&j.failed) ? 1 : 0;
}
