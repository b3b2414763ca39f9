/*
 * test_notify_connector.c - the notify connector (connectors/notify/)
 * delivering against relais-sim-smtp and relais-sim-sms, started as child
 * processes (found via RELAIS_BUILD_DIR, set by ctest), without PostgreSQL:
 * the package state (relais_state_put/_get) is a JSON object kept by fake
 * hub ops in this file.
 *
 * Shows: the acknowledgement by email (subject, body, headers as received by
 * the SMTP server), public / internal comments, the closing message and the
 * contact erased afterwards, SMS with the API key and the event id as
 * reference (a redelivery is deduplicated by the gateway), channel choice
 * and consent, both channels with a retry that sends only what is missing,
 * the verdicts (SMTP 451 -> RETRY, 550 -> REJECT, refused connections and
 * timeouts -> RETRY, gateway 5xx/429 -> RETRY, 4xx -> REJECT), SMTP AUTH,
 * masked details, and the option / template checks of init.
 *
 * Threads: deliver() runs on the test thread; the fake state is guarded by
 * its mutex all the same (the connector may be called from several
 * workers in the hub).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <curl/curl.h>
#include <jansson.h>
#include "testsupport.h"
#include "instance.h"
#include "event_int.h"
#include "options.h"

extern const relais_connector relais_connector_notify;

/* ---- Fake package state ------------------------------------------------------ */

static struct fstate {
    pthread_mutex_t lock;
    json_t *kv;      /* key -> value */
    int     down;    /* 1: the journal is unavailable */
    int     puts;
} FS = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int fs_put(void *hub, const relais_instance *inst, const char *key, json_t *value)
{
    pthread_mutex_lock(&FS.lock);
    int rc = FS.down ? -1 : 0;
    if (!FS.down) {
        json_object_set_new(FS.kv, key, json_deep_copy(value));
        FS.puts++;
    }
    pthread_mutex_unlock(&FS.lock);
    return rc;
}

static json_t *fs_get(void *hub, const relais_instance *inst, const char *key, int *err)
{
    pthread_mutex_lock(&FS.lock);
    json_t *v = NULL;
    *err = FS.down;
    if (!FS.down) v = json_deep_copy(json_object_get(FS.kv, key));
    pthread_mutex_unlock(&FS.lock);
    return v;
}

static const relais_instance_ops fs_ops = { .state_put = fs_put, .state_get = fs_get };

static json_t *fs_value(const char *key)
{
    pthread_mutex_lock(&FS.lock);
    json_t *v = json_deep_copy(json_object_get(FS.kv, key));
    pthread_mutex_unlock(&FS.lock);
    return v;
}

static void fs_reset(void)
{
    pthread_mutex_lock(&FS.lock);
    json_decref(FS.kv);
    FS.kv = json_object();
    FS.down = 0;
    FS.puts = 0;
    pthread_mutex_unlock(&FS.lock);
}

/* ---- Simulators ----------------------------------------------------------------- */

typedef struct sim {
    pid_t pid;
    int   port;      /* SMTP or HTTP API */
    int   control;   /* control API (the SMS gateway's is its own port) */
} sim;

static sim SMTP, SMTP_AUTH, SMS;

static int read_port(const char *pf)
{
    int port = 0;
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(pf, "r");
        if (f) {
            int ok = fscanf(f, "%d", &port) == 1;
            fclose(f);
            if (ok) {
                unlink(pf);
                return port;
            }
        }
        ts_sleep_ms(10);
    }
    fail_msg("simulator did not write %s", pf);
    return -1;
}

static void sim_spawn(sim *sm, const char *name, const char *const *extra)
{
    const char *bd = getenv("RELAIS_BUILD_DIR");
    if (!bd || !*bd) fail_msg("RELAIS_BUILD_DIR is not set (run through ctest)");
    char exe[1024], pf[256], cpf[256];
    snprintf(exe, sizeof exe, "%s/relais-sim-%s", bd, name);
    if (access(exe, X_OK) != 0) fail_msg("%s: %s", exe, strerror(errno));
    snprintf(pf, sizeof pf, "/tmp/relais-notify-%d-%p.port", (int)getpid(), (void *)sm);
    snprintf(cpf, sizeof cpf, "/tmp/relais-notify-%d-%p.cport", (int)getpid(), (void *)sm);
    unlink(pf);
    unlink(cpf);
    const char *argv[20] = { exe, "--listen", "127.0.0.1:0", "--port-file", pf, "--quiet" };
    size_t k = 6;
    int smtp = strcmp(name, "smtp") == 0;
    if (smtp) {
        argv[k++] = "--control";
        argv[k++] = "127.0.0.1:0";
        argv[k++] = "--control-port-file";
        argv[k++] = cpf;
    }
    for (const char *const *x = extra; x && *x && k < 19; x++) argv[k++] = *x;
    argv[k] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    assert_true(pid > 0);
    sm->pid = pid;
    sm->port = read_port(pf);
    sm->control = smtp ? read_port(cpf) : sm->port;
}

static void sim_kill(sim *sm)
{
    if (sm->pid <= 0) return;
    kill(sm->pid, SIGTERM);
    int st = 0;
    waitpid(sm->pid, &st, 0);
    sm->pid = 0;
}

struct body {
    char  *p;
    size_t n;
};

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct body *b = ud;
    size_t n = size * nmemb;
    char *np = realloc(b->p, b->n + n + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, ptr, n);
    b->n += n;
    b->p[b->n] = '\0';
    return n;
}

/* A control call; the answer's JSON (new reference). Fails the test unless 200. */
static json_t *control(const sim *sm, const char *method, const char *path, const char *body)
{
    char url[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", sm->control, path);
    CURL *h = curl_easy_init();
    struct body b = { 0 };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 5L);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    if (rc != CURLE_OK || code != 200) fail_msg("%s %s: %s, HTTP %ld", method, url, curl_easy_strerror(rc), code);
    json_t *j = json_loadb(b.p ? b.p : "", b.n, 0, NULL);
    free(b.p);
    assert_non_null(j);
    return j;
}

static void control_do(const sim *sm, const char *path, const char *body)
{
    json_decref(control(sm, "POST", path, body));
}

static long stat_of(const sim *sm, const char *name)
{
    json_t *st = control(sm, "GET", "/_sim/stats", NULL);
    long v = (long)json_integer_value(json_object_get(st, name));
    json_decref(st);
    return v;
}

static json_t *messages(const sim *sm)
{
    return control(sm, "GET", "/_sim/messages", NULL);
}

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    FS.kv = json_object();
    sim_spawn(&SMTP, "smtp", NULL);
    const char *auth[] = { "--auth", "relais:s3cret", NULL };
    sim_spawn(&SMTP_AUTH, "smtp", auth);
    const char *key[] = { "--key", "k-123", NULL };
    sim_spawn(&SMS, "sms", key);
    setenv("NOTIFY_TEST_SMS_KEY", "k-123", 1);
    setenv("NOTIFY_TEST_BAD_KEY", "wrong", 1);
    setenv("NOTIFY_TEST_SMTP_PASS", "s3cret", 1);
    return 0;
}

static int group_teardown(void **state)
{
    sim_kill(&SMTP);
    sim_kill(&SMTP_AUTH);
    sim_kill(&SMS);
    json_decref(FS.kv);
    FS.kv = NULL;
    curl_global_cleanup();
    return 0;
}

static int each_setup(void **state)
{
    fs_reset();
    control_do(&SMTP, "/_sim/reset", "{}");
    control_do(&SMTP_AUTH, "/_sim/reset", "{}");
    control_do(&SMS, "/_sim/reset", "{}");
    return 0;
}

/* ---- The connector ----------------------------------------------------------- */

/* Open a notify sink with these extra YAML options (after the transports'
 * defaults). 0, or -1 with err filled. */
static int open_with(ts_conn *c, const char *yaml, char *err, size_t errlen)
{
    int rc = ts_conn_open(c, &relais_connector_notify, "citizen", RELAIS_MODE_SINK, yaml, NULL, NULL, err,
                          errlen);
    if (c->inst) {
        c->inst->ops = &fs_ops;
        c->inst->hub = &FS;
    }
    return rc;
}

static void open_sink(ts_conn *c, const char *extra)
{
    char yaml[2048], err[512] = "";
    snprintf(yaml, sizeof yaml,
             "smtp_url: smtp://127.0.0.1:%d\n"
             "mail_from: ne-pas-repondre@villebrune.example\n"
             "mail_from_name: Mairie de Villebrune\n"
             "sms_url: http://127.0.0.1:%d/api/sms\n"
             "sms_key: env:NOTIFY_TEST_SMS_KEY\n"
             "sms_sender: VILLEBRUNE\n"
             "town: Villebrune-sur-Vilaine\n"
             "%s",
             SMTP.port, SMS.port, extra ? extra : "");
    if (open_with(c, yaml, err, sizeof err) != 0) fail_msg("open: %s", err);
}

static relais_event *event(const char *verb, const char *subject, const char *record_id, const char *data)
{
    char type[128], err[256];
    snprintf(type, sizeof type, "fr.relais.grc.request.%s.v1", verb);
    json_error_t je;
    json_t *d = json_loads(data, 0, &je);
    if (!d) fail_msg("bad test data: %s: %s", data, je.text);
    relais_record r = { .type = type, .subject = subject, .record_id = record_id, .data = d };
    relais_event *ev = relais_event_build(&r, "grc-in", "ville", err, sizeof err);
    json_decref(d);
    if (!ev) fail_msg("event: %s", err);
    return ev;
}

static relais_verdict deliver(ts_conn *c, relais_event *ev, relais_answer *ans)
{
    memset(ans, 0, sizeof *ans);
    return c->desc->deliver(c->ctx, ev, NULL, ans);
}

#define CREATED_EMAIL                                                                               \
    "{\"channel\":\"web\",\"category\":\"Nids de poule\",\"status\":\"new\","                      \
    "\"opened_at\":\"2026-03-05T10:14:00+01:00\",\"deadline\":\"2026-03-19\","                    \
    "\"title\":\"Nid de poule rue des Tanneurs\","                                                 \
    "\"location\":{\"address\":{\"number\":12,\"repetition\":\"bis\",\"street\":\"rue des Tanneurs\"," \
    "\"postcode\":\"35999\",\"city\":\"Villebrune-sur-Vilaine\"}},"                                \
    "\"requester\":{\"identity\":{\"family_name\":\"KERMARREC\"},"                                 \
    "\"contact\":{\"email\":\"camille.kermarrec@example.fr\",\"preferred_channel\":\"email\"}}}"

#define CREATED_SMS                                                                                 \
    "{\"channel\":\"phone\",\"category\":\"Éclairage public\",\"status\":\"new\","                 \
    "\"opened_at\":\"2026-03-05T10:14:00+01:00\",\"tracking_code\":\"VB7K2QXM\","                 \
    "\"requester\":{\"identity\":{\"family_name\":\"LE GALL\"},"                                   \
    "\"contact\":{\"mobile\":\"+33612345678\",\"preferred_channel\":\"sms\","                       \
    "\"consent\":{\"sms\":true}}}}"

static void assert_no_personal_data(const relais_answer *ans)
{
    if (strstr(ans->detail, "kermarrec") || strstr(ans->detail, "12345678"))
        fail_msg("personal data in the detail: %s", ans->detail);
}

/* The whole life of a request by email: acknowledgement with the number,
 * public comment, internal comment (nothing), closing; contact erased. */
static void test_email_life_cycle(void **state)
{
    ts_conn c;
    open_sink(&c, NULL);
    relais_answer ans;
    relais_event *ev = event("created", "request/GRC-2026-000123", "c1", CREATED_EMAIL);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "email to c***@e***.fr: SMTP 250 accepted");
    assert_int_equal(ans.status, 250);
    assert_string_equal(ans.local_id, "");
    json_t *ms = messages(&SMTP);
    assert_int_equal(json_array_size(ms), 1);
    json_t *m = json_array_get(ms, 0);
    assert_string_equal(json_string_value(json_object_get(m, "from")), "ne-pas-repondre@villebrune.example");
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "to"), 0)),
                        "camille.kermarrec@example.fr");
    assert_string_equal(json_string_value(json_object_get(m, "subject")),
                        "Votre demande n° GRC-2026-000123 a bien été enregistrée");
    assert_string_equal(json_string_value(json_object_get(m, "header_from")),
                        "\"Mairie de Villebrune\" <ne-pas-repondre@villebrune.example>");
    assert_string_equal(json_string_value(json_object_get(m, "header_to")), "camille.kermarrec@example.fr");
    char mid[128];
    snprintf(mid, sizeof mid, "<relais.%s@villebrune.example>", relais_event_id(ev));
    assert_string_equal(json_string_value(json_object_get(m, "message_id")), mid);
    assert_string_equal(json_string_value(json_object_get(m, "content_type")), "text/plain; charset=UTF-8");
    assert_string_equal(json_string_value(json_object_get(m, "transfer_encoding")), "quoted-printable");
    const char *raw = json_string_value(json_object_get(m, "raw"));
    assert_non_null(strstr(raw, "\r\nSubject: =?UTF-8?B?"));
    assert_non_null(strstr(raw, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(raw, "Date: "));
    const char *body = json_string_value(json_object_get(m, "body"));
    assert_non_null(strstr(body, "Votre demande « Nids de poule » a bien été reçue par la mairie de "
                                 "Villebrune-sur-Vilaine le 5 mars 2026."));
    assert_non_null(strstr(body, "Lieu : 12 bis rue des Tanneurs, 35999 Villebrune-sur-Vilaine\n"));
    assert_non_null(strstr(body, "Son numéro est GRC-2026-000123"));
    assert_non_null(strstr(body, "avant le 19 mars 2026"));
    json_decref(ms);
    /* the contact is kept for the later events */
    json_t *st = fs_value("contact/request/GRC-2026-000123");
    assert_string_equal(json_string_value(json_object_get(st, "email")), "camille.kermarrec@example.fr");
    assert_string_equal(json_string_value(json_object_get(st, "number")), "GRC-2026-000123");
    json_decref(st);
    relais_event_unref(ev);

    /* a public comment */
    ev = event("updated", "request/GRC-2026-000123", "u1",
               "{\"status\":\"in_progress\",\"updated_at\":\"2026-03-05T14:03:05+01:00\","
               "\"comment\":\"Intervention programmée demain matin par la régie voirie.\","
               "\"comment_visibility\":\"public\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_no_personal_data(&ans);
    relais_event_unref(ev);
    /* an internal comment: nothing */
    ev = event("updated", "request/GRC-2026-000123", "u2",
               "{\"status\":\"in_progress\",\"updated_at\":\"2026-03-05T15:00:00+01:00\","
               "\"comment\":\"Voir avec l'équipe de nuit\",\"comment_visibility\":\"internal\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "internal comment: nothing sent to the citizen");
    relais_event_unref(ev);
    /* a status change without a comment: nothing */
    ev = event("updated", "request/GRC-2026-000123", "u3",
               "{\"status\":\"waiting\",\"updated_at\":\"2026-03-05T15:00:00+01:00\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no comment in this update: nothing to tell the citizen");
    relais_event_unref(ev);
    /* a comment without visibility is public */
    ev = event("updated", "request/GRC-2026-000123", "u4",
               "{\"status\":\"in_progress\",\"updated_at\":\"2026-03-05T16:00:00+01:00\","
               "\"comment\":\"Le chantier commence.\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    ms = messages(&SMTP);
    assert_int_equal(json_array_size(ms), 3);
    m = json_array_get(ms, 1);
    assert_string_equal(json_string_value(json_object_get(m, "subject")),
                        "Votre demande n° GRC-2026-000123 est en cours de traitement");
    assert_non_null(strstr(json_string_value(json_object_get(m, "body")),
                           "Message du service :\nIntervention programmée demain matin par la régie voirie.\n"));
    /* category and number come from the kept contact */
    assert_non_null(strstr(json_string_value(json_object_get(m, "body")),
                           "Votre demande n° GRC-2026-000123 (Nids de poule) est en cours de traitement."));
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(ms, 2), "body")),
                           "Le chantier commence."));
    json_decref(ms);

    /* closing: the answer, nothing about the commitment */
    ev = event("closed", "request/GRC-2026-000123", "x1",
               "{\"closed_at\":\"2026-03-20T11:32:20+01:00\",\"outcome\":\"resolved\","
               "\"answer\":\"Le nid de poule a été rebouché ce matin.\",\"delay_days\":11,"
               "\"commitment_days\":10,\"commitment_met\":false}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    ms = messages(&SMTP);
    assert_int_equal(json_array_size(ms), 4);
    m = json_array_get(ms, 3);
    assert_string_equal(json_string_value(json_object_get(m, "subject")),
                        "Votre demande n° GRC-2026-000123 est clôturée");
    body = json_string_value(json_object_get(m, "body"));
    assert_non_null(strstr(body, "est clôturée : résolue."));
    assert_non_null(strstr(body, "Le nid de poule a été rebouché ce matin."));
    assert_null(strstr(body, "10"));
    assert_null(strstr(body, "11 jours"));
    assert_null(strstr(body, "engagement"));
    json_decref(ms);
    /* the contact is no longer kept; a later event finds none */
    st = fs_value("contact/request/GRC-2026-000123");
    assert_null(json_object_get(st, "email"));
    json_decref(st);
    ev = event("updated", "request/GRC-2026-000123", "u5",
               "{\"status\":\"closed\",\"updated_at\":\"2026-03-21T10:00:00+01:00\",\"comment\":\"Réouverte\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no contact for this request");
    relais_event_unref(ev);
    assert_int_equal(stat_of(&SMTP, "messages"), 4);
    ts_conn_close(&c);
}

/* SMS: key, sender, reference = event id; the same event again is one SMS. */
static void test_sms_and_redelivery(void **state)
{
    ts_conn c;
    open_sink(&c, NULL);
    relais_answer ans;
    relais_event *ev = event("created", "request/o311-4", "c2", CREATED_SMS);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "sms to +33*******78: HTTP 201 accepted (message SMS-1)");
    assert_int_equal(ans.status, 201);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);   /* redelivery */
    assert_string_equal(ans.detail, "sms to +33*******78: HTTP 200 accepted (message SMS-1)");
    assert_int_equal(stat_of(&SMS, "sent"), 1);
    assert_int_equal(stat_of(&SMS, "duplicates"), 1);
    json_t *ms = messages(&SMS);
    assert_int_equal(json_array_size(ms), 1);
    json_t *m = json_array_get(ms, 0);
    assert_string_equal(json_string_value(json_object_get(m, "to")), "+33612345678");
    assert_string_equal(json_string_value(json_object_get(m, "sender")), "VILLEBRUNE");
    assert_string_equal(json_string_value(json_object_get(m, "reference")), relais_event_id(ev));
    /* the tracking code is the number; no trailing newline */
    assert_string_equal(json_string_value(json_object_get(m, "text")),
                        "Mairie de Villebrune-sur-Vilaine : votre demande n° VB7K2QXM (Éclairage public) est "
                        "enregistrée. Vous serez informé(e) de son avancement.");
    json_decref(ms);
    assert_int_equal(stat_of(&SMTP, "messages"), 0);   /* one channel only */
    relais_event_unref(ev);
    ev = event("closed", "request/o311-4", "x2",
               "{\"closed_at\":\"2026-03-06T11:32:20+01:00\",\"outcome\":\"not_municipal\","
               "\"answer\":\"Transmis au Département.\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    ms = messages(&SMS);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 1), "text")),
                        "Mairie de Villebrune-sur-Vilaine, demande n° VB7K2QXM clôturée (transmise à "
                        "l'organisme compétent). Transmis au Département.");
    json_decref(ms);
    ts_conn_close(&c);

    /* a wrong key is refused by the gateway: REJECT with its reason */
    char yaml[1024], err[256];
    snprintf(yaml, sizeof yaml, "sms_url: http://127.0.0.1:%d/api/sms\nsms_key: env:NOTIFY_TEST_BAD_KEY\n",
             SMS.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    ev = event("created", "request/o311-5", "c3", CREATED_SMS);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);
    assert_string_equal(ans.detail, "sms to +33*******78: HTTP 401 refused: missing or wrong API key");
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* No contact, no consent, nothing reachable: OK without sending. */
static void test_nothing_to_send(void **state)
{
    ts_conn c;
    open_sink(&c, NULL);
    relais_answer ans;
    relais_event *ev = event("created", "request/anon-1", "c4",
                             "{\"channel\":\"web\",\"category\":\"Propreté\",\"status\":\"new\","
                             "\"opened_at\":\"2026-03-05T10:14:00+01:00\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no contact for this request");
    relais_event_unref(ev);
    ev = event("updated", "request/never-seen", "u6",
               "{\"status\":\"in_progress\",\"updated_at\":\"2026-03-05T14:03:05+01:00\",\"comment\":\"x\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no contact for this request");
    relais_event_unref(ev);
    ev = event("created", "request/noconsent-1", "c5",
               "{\"channel\":\"web\",\"category\":\"Propreté\",\"status\":\"new\","
               "\"opened_at\":\"2026-03-05T10:14:00+01:00\",\"requester\":{\"identity\":{\"family_name\":\"X\"},"
               "\"contact\":{\"mobile\":\"0612345678\",\"email\":\"x@example.fr\","
               "\"consent\":{\"sms\":false,\"email\":false}}}}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no consent for the contact's channels: nothing sent");
    relais_event_unref(ev);
    /* not a request event at all */
    relais_record r = { .type = "fr.relais.technical.workorder.created.v1", .subject = "workorder/1",
                        .record_id = "w1", .data = NULL };
    json_t *d = json_object();
    r.data = d;
    char err[256];
    ev = relais_event_build(&r, "works-in", "ville", err, sizeof err);
    json_decref(d);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "nothing to tell the citizen for fr.relais.technical.workorder.created.v1");
    relais_event_unref(ev);
    assert_int_equal(stat_of(&SMTP, "messages"), 0);
    assert_int_equal(stat_of(&SMS, "requests"), 0);
    ts_conn_close(&c);

    /* require_consent: without an explicit consent nothing goes out */
    open_sink(&c, "require_consent: true\n");
    ev = event("created", "request/GRC-9", "c6", CREATED_EMAIL);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "no consent for the contact's channel: nothing sent");
    relais_event_unref(ev);
    ev = event("created", "request/o311-9", "c7", CREATED_SMS);   /* consent.sms true */
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(stat_of(&SMS, "sent"), 1);
    relais_event_unref(ev);
    ts_conn_close(&c);

    /* an instance without SMS and a contact with a mobile only */
    char yaml[512];
    snprintf(yaml, sizeof yaml, "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\n", SMTP.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    ev = event("created", "request/o311-10", "c8", CREATED_SMS);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail,
                        "the contact has only a mobile number, which this instance does not send: nothing sent");
    relais_event_unref(ev);
    ts_conn_close(&c);
}

#define CREATED_BOTH(pref)                                                                          \
    "{\"channel\":\"web\",\"category\":\"Propreté\",\"status\":\"new\","                          \
    "\"opened_at\":\"2026-03-05T10:14:00+01:00\",\"requester\":{\"identity\":{\"family_name\":\"X\"}," \
    "\"contact\":{\"mobile\":\"0612345678\",\"email\":\"x@example.fr\"" pref "}}}"

/* Which channel: preferred, else sms, else email; or both. */
static void test_channels(void **state)
{
    ts_conn c;
    relais_answer ans;
    open_sink(&c, NULL);
    relais_event *ev = event("created", "request/ch-1", "c9", CREATED_BOTH(",\"preferred_channel\":\"email\""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "email to x***@e***.fr: SMTP 250 accepted");
    relais_event_unref(ev);
    ev = event("created", "request/ch-2", "c10", CREATED_BOTH(""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "sms to 06******78: HTTP 201 accepted (message SMS-1)");
    relais_event_unref(ev);
    /* preferred postal mail: not a channel of this connector, the rule applies */
    ev = event("created", "request/ch-3", "c11", CREATED_BOTH(",\"preferred_channel\":\"mail\""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_non_null(strstr(ans.detail, "sms to 06******78"));
    relais_event_unref(ev);
    /* preferred sms but refused: email */
    ev = event("created", "request/ch-4", "c12",
               CREATED_BOTH(",\"preferred_channel\":\"sms\",\"consent\":{\"sms\":false}"));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_non_null(strstr(ans.detail, "email to x***@e***.fr"));
    relais_event_unref(ev);
    assert_int_equal(stat_of(&SMTP, "messages"), 2);
    assert_int_equal(stat_of(&SMS, "sent"), 2);
    ts_conn_close(&c);

    /* both: each reachable channel; a gateway down is retried alone */
    each_setup(NULL);
    open_sink(&c, "channels: both\n");
    ev = event("created", "request/ch-5", "c13", CREATED_BOTH(",\"preferred_channel\":\"email\""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "email to x***@e***.fr: SMTP 250 accepted; "
                                    "sms to 06******78: HTTP 201 accepted (message SMS-1)");
    relais_event_unref(ev);
    control_do(&SMS, "/_sim/fail", "{\"status\":503}");
    ev = event("created", "request/ch-6", "c14", CREATED_BOTH(""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_string_equal(ans.detail, "email to x***@e***.fr: SMTP 250 accepted; "
                                    "sms to 06******78: HTTP 503 transient, will retry: injected failure");
    assert_int_equal(ans.status, 503);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_string_equal(ans.detail, "email already sent on an earlier attempt; "
                                    "sms to 06******78: HTTP 503 transient, will retry: injected failure");
    assert_int_equal(stat_of(&SMTP, "messages"), 2);   /* not sent again */
    control_do(&SMS, "/_sim/reset", "{}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_string_equal(ans.detail, "email already sent on an earlier attempt; "
                                    "sms to 06******78: HTTP 201 accepted (message SMS-1)");
    assert_int_equal(stat_of(&SMTP, "messages"), 2);
    assert_int_equal(stat_of(&SMS, "sent"), 1);
    relais_event_unref(ev);
    /* one channel refused for good, the other sent: OK, the refusal told */
    control_do(&SMTP, "/_sim/fail", "{\"code\":550,\"count\":1}");
    ev = event("created", "request/ch-7", "c14b", CREATED_BOTH(""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_non_null(strstr(ans.detail, "email to x***@e***.fr: SMTP 550 refused"));
    assert_non_null(strstr(ans.detail, "; sms to 06******78: HTTP 201 accepted"));
    relais_event_unref(ev);
    /* both refused: REJECT */
    control_do(&SMTP, "/_sim/fail", "{\"code\":550,\"count\":1}");
    control_do(&SMS, "/_sim/fail", "{\"status\":400,\"count\":1}");
    ev = event("created", "request/ch-8", "c14c", CREATED_BOTH(""));
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* SMTP answers: 451 -> RETRY, 550 -> REJECT, at RCPT and at DATA; refused
 * connections and timeouts -> RETRY. */
static void test_smtp_verdicts(void **state)
{
    ts_conn c;
    relais_answer ans;
    open_sink(&c, "timeout: 700ms\n");
    relais_event *ev = event("created", "request/GRC-1", "c15", CREATED_EMAIL);
    control_do(&SMTP, "/_sim/fail", "{\"code\":451,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 451);
    assert_non_null(strstr(ans.detail, "email to c***@e***.fr: SMTP 451 transient, will retry"));
    assert_no_personal_data(&ans);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);    /* the count is used up */
    control_do(&SMTP, "/_sim/fail", "{\"code\":550,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);
    assert_int_equal(ans.status, 550);
    assert_non_null(strstr(ans.detail, "email to c***@e***.fr: SMTP 550 refused"));
    control_do(&SMTP, "/_sim/fail", "{\"code\":452,\"count\":1,\"stage\":\"data\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 452);
    control_do(&SMTP, "/_sim/fail", "{\"code\":554,\"count\":1,\"stage\":\"data\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);
    assert_int_equal(ans.status, 554);
    /* a relay that does not answer in time */
    control_do(&SMTP, "/_sim/fail", "{\"delay_ms\":1500,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "will retry"));
    assert_int_equal(stat_of(&SMTP, "messages"), 1);
    relais_event_unref(ev);
    ts_conn_close(&c);

    /* nobody listening */
    char yaml[512], err[256];
    int dead = ts_free_port();
    snprintf(yaml, sizeof yaml, "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\n", dead);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    ev = event("created", "request/GRC-2", "c16", CREATED_EMAIL);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "email to c***@e***.fr: "));
    assert_non_null(strstr(ans.detail, ", will retry"));
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* Gateway answers: 5xx and 429 -> RETRY, other 4xx -> REJECT, down or slow -> RETRY. */
static void test_sms_verdicts(void **state)
{
    ts_conn c;
    relais_answer ans;
    open_sink(&c, "timeout: 700ms\n");
    relais_event *ev = event("created", "request/o311-20", "c17", CREATED_SMS);
    control_do(&SMS, "/_sim/fail", "{\"status\":429,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 429);
    control_do(&SMS, "/_sim/fail", "{\"status\":500,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    control_do(&SMS, "/_sim/fail", "{\"status\":400,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);
    assert_string_equal(ans.detail, "sms to +33*******78: HTTP 400 refused: injected failure");
    control_do(&SMS, "/_sim/fail", "{\"delay_ms\":1500,\"count\":1}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "sms to +33*******78: "));
    assert_non_null(strstr(ans.detail, "will retry"));
    assert_int_equal(stat_of(&SMS, "sent"), 0);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(stat_of(&SMS, "sent"), 1);
    relais_event_unref(ev);
    ts_conn_close(&c);

    /* the gateway is down (nothing listening): RETRY */
    char yaml[512], err[256];
    snprintf(yaml, sizeof yaml, "sms_url: http://127.0.0.1:%d/api/sms\n", ts_free_port());
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    ev = event("created", "request/o311-21", "c18", CREATED_SMS);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "sms to +33*******78: "));
    assert_no_personal_data(&ans);
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* The journal holding the state is down: RETRY, nothing sent. */
static void test_state_unavailable(void **state)
{
    ts_conn c;
    relais_answer ans;
    open_sink(&c, NULL);
    FS.down = 1;
    relais_event *ev = event("created", "request/GRC-3", "c19", CREATED_EMAIL);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_string_equal(ans.detail, "cannot keep the contact: journal unavailable, will retry");
    relais_event_unref(ev);
    ev = event("closed", "request/GRC-3", "x3", "{\"closed_at\":\"2026-03-06T11:32:20+01:00\",\"outcome\":\"resolved\"}");
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_string_equal(ans.detail, "cannot read the contact: journal unavailable, will retry");
    relais_event_unref(ev);
    assert_int_equal(stat_of(&SMTP, "messages"), 0);
    FS.down = 0;
    ts_conn_close(&c);
}

/* SMTP AUTH PLAIN against a relay that requires it. */
static void test_smtp_auth(void **state)
{
    ts_conn c;
    relais_answer ans;
    char yaml[512], err[256];
    snprintf(yaml, sizeof yaml,
             "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\nsmtp_user: relais\n"
             "smtp_password: env:NOTIFY_TEST_SMTP_PASS\n", SMTP_AUTH.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    relais_event *ev = event("created", "request/GRC-4", "c20", CREATED_EMAIL);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(stat_of(&SMTP_AUTH, "messages"), 1);
    ts_conn_close(&c);
    /* wrong password: the relay refuses the login, a configuration matter: RETRY */
    snprintf(yaml, sizeof yaml,
             "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\nsmtp_user: relais\n"
             "smtp_password: env:NOTIFY_TEST_BAD_KEY\n", SMTP_AUTH.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_non_null(strstr(ans.detail, "SMTP login refused (535)"));
    ts_conn_close(&c);
    /* no credentials at all: 530 at MAIL FROM, a configuration matter too */
    snprintf(yaml, sizeof yaml, "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\n",
             SMTP_AUTH.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(ans.status, 530);
    assert_non_null(strstr(ans.detail, "SMTP login refused (530)"));
    assert_int_equal(stat_of(&SMTP_AUTH, "messages"), 1);
    relais_event_unref(ev);
    ts_conn_close(&c);
}

/* smtp_tls: the simulator offers no STARTTLS; "required" cannot send
 * (RETRY: a configuration matter), "none" and "try" send in clear. A
 * custom sms_key_header is the header the key travels in. */
static void test_transport_options(void **state)
{
    ts_conn c;
    relais_answer ans;
    char yaml[512], err[256];
    relais_event *ev = event("created", "request/GRC-5", "c21", CREATED_EMAIL);
    snprintf(yaml, sizeof yaml, "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\nsmtp_tls: required\n",
             SMTP.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_RETRY);
    assert_int_equal(stat_of(&SMTP, "messages"), 0);
    ts_conn_close(&c);
    snprintf(yaml, sizeof yaml, "smtp_url: smtp://127.0.0.1:%d\nmail_from: m@villebrune.example\nsmtp_tls: none\n",
             SMTP.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    assert_int_equal(stat_of(&SMTP, "messages"), 1);
    ts_conn_close(&c);
    relais_event_unref(ev);

    ev = event("created", "request/o311-30", "c22", CREATED_SMS);
    snprintf(yaml, sizeof yaml,
             "sms_url: http://127.0.0.1:%d/api/sms\nsms_key: env:NOTIFY_TEST_SMS_KEY\nsms_key_header: X-Gateway-Token\n",
             SMS.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_REJECT);   /* the gateway wants X-API-Key */
    assert_int_equal(ans.status, 401);
    ts_conn_close(&c);
    snprintf(yaml, sizeof yaml,
             "sms_url: http://127.0.0.1:%d/api/sms\nsms_key: env:NOTIFY_TEST_SMS_KEY\nsms_key_header: x-api-key\n",
             SMS.port);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);       /* header names are case-blind */
    ts_conn_close(&c);
    relais_event_unref(ev);
}

/* POST to the gateway simulator directly: its refusals and segment count. */
static long sms_post(const char *key, const char *body, json_t **answer)
{
    char url[128], hdr[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/sms", SMS.port);
    CURL *h = curl_easy_init();
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    if (key) {
        snprintf(hdr, sizeof hdr, "X-API-Key: %s", key);
        hl = curl_slist_append(hl, hdr);
    }
    struct body b = { 0 };
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    long code = 0;
    if (curl_easy_perform(h) == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    *answer = json_loadb(b.p ? b.p : "", b.n, 0, NULL);
    free(b.p);
    return code;
}

static void test_sms_simulator(void **state)
{
    static const struct {
        const char *key, *body;
        long code;
        const char *error;
    } cases[] = {
        { NULL, "{\"to\":\"+33612345678\",\"text\":\"x\"}", 401, "missing or wrong API key" },
        { "k-123", "[1]", 400, "body is not a JSON object" },
        { "k-123", "{\"to\":\"06 12\",\"text\":\"x\"}", 422, "'to' is not a phone number" },
        { "k-123", "{\"to\":\"0612345678\",\"text\":\"\"}", 422, "'text' is missing or empty" },
        { "k-123", "{\"to\":\"0612345678\",\"text\":\"x\",\"sender\":\"TWELVE-CHARS\"}", 422, "'sender'" },
        { "k-123", "{\"to\":\"0612345678\",\"text\":\"x\",\"reference\":7}", 422, "'reference'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *a = NULL;
        long code = sms_post(cases[i].key, cases[i].body, &a);
        const char *e = json_string_value(json_object_get(a, "error"));
        if (code != cases[i].code || !e || !strstr(e, cases[i].error))
            fail_msg("case %zu: %ld %s", i, code, e ? e : "(no error)");
        json_decref(a);
    }
    assert_int_equal(stat_of(&SMS, "refused"), 6);
    assert_int_equal(stat_of(&SMS, "sent"), 0);
    /* segments: 160 GSM characters in one, accents outside GSM need 70 per SMS */
    char body[1024], text[400];
    memset(text, 'a', 161);
    text[161] = '\0';
    snprintf(body, sizeof body, "{\"to\":\"0612345678\",\"text\":\"%s\"}", text);
    json_t *a = NULL;
    assert_int_equal(sms_post("k-123", body, &a), 201);
    assert_int_equal(json_integer_value(json_object_get(a, "segments")), 2);
    json_decref(a);
    assert_int_equal(sms_post("k-123", "{\"to\":\"0612345678\",\"text\":\"Votre demande est clôturée\"}", &a), 201);
    assert_int_equal(json_integer_value(json_object_get(a, "segments")), 1);
    json_decref(a);
    /* /_sim/fail refuses what it cannot use */
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/_sim/fail", SMS.control);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"status\":\"x\"}");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    struct body b = { 0 };
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    long code = 0;
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 400);
    free(b.p);
    memset(&b, 0, sizeof b);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/_sim/fail", SMTP.control);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{\"code\":250}");
    curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    assert_int_equal(code, 400);
    free(b.p);
    curl_easy_cleanup(h);
}

/* Options and templates are checked at init. */
static void test_init_errors(void **state)
{
    static const struct {
        const char *yaml;
        const char *expect;
    } cases[] = {
        { "town: X\n", "notify: give smtp_url (email), sms_url (SMS) or both" },
        { "smtp_url: http://127.0.0.1:25\nmail_from: a@b.fr\n", "is not a valid smtp:// or smtps:// URL" },
        { "smtp_url: smtp://127.0.0.1:25\n", "notify: mail_from must be a valid address" },
        { "smtp_url: smtp://127.0.0.1:25\nmail_from: 'a b@c.fr'\n", "notify: mail_from must be a valid address" },
        { "sms_url: ftp://127.0.0.1/\n", "is not a valid http:// or https:// URL" },
        { "sms_url: http://127.0.0.1/\nsms_key_header: 'X Key'\n", "sms_key_header must be a header name" },
        { "sms_url: http://127.0.0.1/\ntemplates: /nonexistent/notify\n",
          "notify: templates: /nonexistent/notify/request.created.txt: No such file or directory" },
        { "sms_url: http://127.0.0.1/\nchannels: all\n", "channels" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ts_conn c;
        char err[512] = "";
        int rc = open_with(&c, cases[i].yaml, err, sizeof err);
        if (rc == 0) fail_msg("case %zu accepted", i);
        if (!strstr(err, cases[i].expect)) fail_msg("case %zu: '%s' does not say '%s'", i, err, cases[i].expect);
        if (c.inst) ts_conn_close(&c);
        else {
            relais_options_free(relais_connector_notify.options, c.cfg);
            free(c.cfg);
        }
    }
    /* a templates folder of one's own with an unknown placeholder: file and line */
    char dir[] = "/tmp/relais-notify-rt.XXXXXX";
    assert_non_null(mkdtemp(dir));
    static const char *const files[] = { "request.created.txt", "request.updated.txt", "request.closed.txt",
                                         "request.created.sms.txt", "request.updated.sms.txt",
                                         "request.closed.sms.txt" };
    for (int i = 0; i < 6; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        FILE *f = fopen(p, "w");
        assert_non_null(f);
        fputs(i < 3 ? "Subject: Demande {{number}}\nBonjour\nNuméro {{numero}}\n" : "Demande {{number}}\n", f);
        fclose(f);
    }
    char yaml[1024], err[512] = "", want[600];
    snprintf(yaml, sizeof yaml, "sms_url: http://127.0.0.1/\ntemplates: %s\n", dir);
    ts_conn c;
    assert_int_equal(open_with(&c, yaml, err, sizeof err), -1);
    snprintf(want, sizeof want, "notify: templates: %s/request.created.txt:3: unknown placeholder {{numero}}", dir);
    if (strncmp(err, want, strlen(want)) != 0) fail_msg("got '%s'", err);
    ts_conn_close(&c);
    /* fixed, the folder is used instead of the built-in one */
    for (int i = 0; i < 6; i++) {
        char p0[512];
        snprintf(p0, sizeof p0, "%s/%s", dir, files[i]);
        FILE *f0 = fopen(p0, "w");
        assert_non_null(f0);
        fputs(i < 3 ? "Subject: Demande {{number}}\nBonjour\n" : "CCAS : dossier {{number}} ({{category}}) bien reçu.\n", f0);
        fclose(f0);
    }
    snprintf(yaml, sizeof yaml, "sms_url: http://127.0.0.1:%d/api/sms\nsms_key: env:NOTIFY_TEST_SMS_KEY\ntemplates: %s\n",
             SMS.port, dir);
    if (open_with(&c, yaml, err, sizeof err) != 0) fail_msg("%s", err);
    relais_event *ev = event("created", "request/ccas-1", "c23", CREATED_SMS);
    relais_answer ans;
    assert_int_equal(deliver(&c, ev, &ans), RELAIS_DELIVER_OK);
    relais_event_unref(ev);
    json_t *ms = messages(&SMS);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ms, 0), "text")),
                        "CCAS : dossier VB7K2QXM (Éclairage public) bien reçu.");
    json_decref(ms);
    ts_conn_close(&c);
    for (int i = 0; i < 6; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, files[i]);
        unlink(p);
    }
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_email_life_cycle, each_setup),
        cmocka_unit_test_setup(test_sms_and_redelivery, each_setup),
        cmocka_unit_test_setup(test_nothing_to_send, each_setup),
        cmocka_unit_test_setup(test_channels, each_setup),
        cmocka_unit_test_setup(test_smtp_verdicts, each_setup),
        cmocka_unit_test_setup(test_sms_verdicts, each_setup),
        cmocka_unit_test_setup(test_state_unavailable, each_setup),
        cmocka_unit_test_setup(test_smtp_auth, each_setup),
        cmocka_unit_test_setup(test_transport_options, each_setup),
        cmocka_unit_test_setup(test_sms_simulator, each_setup),
        cmocka_unit_test_setup(test_init_errors, each_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
