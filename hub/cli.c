/*
 * cli.c - the `relais` command line.
 *
 *   relais run -c FILE              run the hub until SIGINT/SIGTERM (graceful stop, exit 0)
 *   relais check -c FILE            validate; every error as FILE:LINE: message; exit 1 if any
 *   relais trace [-c FILE] [--json] ID [--redact | --show-personal]
 *                                   every step of the events matching ID (event id,
 *                                   correlation id or source record id), in order,
 *                                   and their data with personal fields masked
 *                                   (hub/personal.h) unless --show-personal (journaled)
 *   relais retention run -c FILE [--db CONNINFO] [--dry-run]
 *                                   purge payloads past their retention (hub/retention.h)
 *   relais dlq list [-c FILE] [--json]
 *   relais replay [-c FILE] ID      put dead-lettered deliveries back (delivery id or event id)
 *   relais audit verify [-c FILE] [--from T] [--to T]
 *   relais audit verify --file EXTRACT
 *   relais audit export [-c FILE] (--from T --to T | --correlation ID | --person ID) [-o FILE]
 *                                   the tamper-evident trail (hub/auditlog.h)
 *   relais token new --name NAME --role ROLE
 *                                   a bearer token of the admin API (tokens.h)
 *   relais db migrate [-c FILE | --db CONNINFO]
 *                                   apply the journal's migrations (migrations.h)
 *   relais connectors describe [--json]
 *   relais connectors list -c FILE [--json]
 *   relais connectors (pause | resume) NAME -c FILE
 *   relais reload -c FILE           these three call the running hub's admin
 *                                   API with --token-file F or RELAIS_ADMIN_TOKEN
 *   relais test DIR [--schemas DIR] run the mapping tests (*.test.yaml) under DIR
 *   relais broker [--brokers N] [--topic T] [--partitions P] [--bootstrap-file F]
 *                                   a standalone embedded Kafka broker (mock cluster)
 *   relais --version | --help
 * Read commands find the database through -c FILE (journal.conninfo), or
 * --db CONNINFO, or the RELAIS_DB environment variable.
 * Exit codes: 0 ok, 1 failure or invalid input, 2 usage error.
 */
#include <errno.h>
#include <signal.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "config.h"
#include "hub.h"
#include "journal.h"
#include "options.h"
#include "bus.h"
#include "maptest.h"
#include "sla.h"
#include "event_int.h"
#include "tokens.h"
#include "auditlog.h"
#include "fileio.h"
#include "personal.h"
#include "retention.h"
#include "migrations.h"
#include <libpq-fe.h>
#include <openssl/crypto.h>

static volatile sig_atomic_t g_stop;
static relais_hub *g_running_hub;     /* only for the signal handler of `relais run` */

static void on_signal(int sig)
{
    if (sig == SIGHUP) {      /* reload the mapping files */
        if (g_running_hub) relais_hub_request_reload(g_running_hub);
        return;
    }
    g_stop = 1;
    if (g_running_hub) relais_hub_request_stop(g_running_hub);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

static void usage(FILE *out)
{
    fprintf(out,
        "usage: relais <command> [options]\n"
        "\n"
        "commands:\n"
        "  run -c FILE                     run the hub (SIGINT/SIGTERM: graceful stop)\n"
        "  check -c FILE                   validate a configuration; FILE:LINE: message per error\n"
        "  trace [-c FILE] [--json] ID [--redact | --show-personal]\n"
        "                                  every step of an event, by event id, correlation id\n"
        "                                  or source record id, and its data: personal fields\n"
        "                                  masked (--redact, the default) or shown and the read\n"
        "                                  journaled (--show-personal)\n"
        "  dlq list [-c FILE] [--json]     dead-lettered deliveries\n"
        "  replay [-c FILE] ID             deliver dead-lettered deliveries again\n"
        "                                  (ID: a delivery id or an event id)\n"
        "  discard [-c FILE] ID [--reason TEXT]\n"
        "                                  set dead-lettered deliveries aside for good; at a\n"
        "                                  destination with order: subject, the events of the\n"
        "                                  same subject held behind them go on\n"
        "  reload -c FILE [--token-file F] the running hub loads its mapping files (fixed code\n"
        "                                  tables) and its admin tokens file (revoked tokens)\n"
        "                                  again; also on SIGHUP; all or nothing\n"
        "  sla [-c FILE] [--tenant T] [--from D] [--to D] [--today D] [--json]\n"
        "                                  citizens' requests: open ones past their commitment,\n"
        "                                  share kept per category (closings from D to D;\n"
        "                                  default: the last 30 days)\n"
        "  person [-c FILE] [--json] ID [--redact | --show-personal]\n"
        "                                  every event about one person (an email, a phone\n"
        "                                  number, person/..., a package's id) and the packages\n"
        "                                  that received them: subject access requests\n"
        "  token new --name NAME --role ROLE\n"
        "                                  a bearer token of the admin API (role auditor, operator\n"
        "                                  or admin): the token on stdout, once; the line to add\n"
        "                                  to the hub.admin_tokens file on stderr\n"
        "  audit verify [-c FILE] [--from T] [--to T]\n"
        "                                  check the journal's chain and checkpoints: the first\n"
        "                                  entry modified, deleted, inserted or reordered per stream\n"
        "                                  (exit 1); T: YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ\n"
        "  audit export [-c FILE] (--from T --to T | --correlation ID | --person ID) [-o FILE]\n"
        "                                  a self-contained extract (JSON lines and chain proofs);\n"
        "                                  the read is journaled as personal_data_read\n"
        "  audit verify --file EXTRACT (-c FILE | --audit-key FILE)\n"
        "                                  verify an extract offline\n"
        "  retention run -c FILE [--db CONNINFO] [--dry-run]\n"
        "                                  empty the payloads past their retention (section\n"
        "                                  retention); one signed step \"purged\" per run\n"
        "  db migrate [-c FILE | --db CONNINFO]\n"
        "                                  bring the journal's schema to this version (as the\n"
        "                                  schema owner when the hubs run as relais_hub)\n"
        "  connectors describe [--json]    built-in connectors and their options\n"
        "  connectors list -c FILE [--json] [--token-file F]\n"
        "                                  the running hub's instances: paused or not, circuit,\n"
        "                                  queued and held deliveries (role auditor)\n"
        "  connectors (pause | resume) NAME -c FILE [--token-file F]\n"
        "                                  hold a sink's deliveries or stop a source taking\n"
        "                                  records, until resumed or the hub restarts (operator)\n"
        "  reload and connectors call the running hub's admin API with the token in\n"
        "  --token-file F (first line) or RELAIS_ADMIN_TOKEN\n"
        "  test DIR [--schemas DIR]        run the mapping tests (*.test.yaml) under DIR\n"
        "  broker [--brokers N] [--topic T] [--partitions P] [--bootstrap-file F]\n"
        "                                  run a standalone embedded Kafka broker\n"
        "  --version                       print the version\n"
        "  --help                          this text\n"
        "\n"
        "Read commands (trace, dlq, replay, discard, sla, person) find the journal through -c FILE, --db CONNINFO\n"
        "or the RELAIS_DB environment variable.\n");
}

typedef struct cli_opts {
    const char *config;
    const char *db;
    int         json;
    const char *arg;          /* first positional argument after the command */
    int         brokers;
    const char *topic;
    int         partitions;
    const char *bootstrap_file;
    const char *schemas;
    const char *reason;
    const char *tenant;
    const char *from, *to, *today;
    const char *audit_key;    /* --audit-key FILE */
    const char *checkpoints;  /* --checkpoints FILE */
    const char *file;         /* --file FILE (audit verify of an extract) */
    const char *out;          /* -o FILE */
    const char *correlation;  /* --correlation ID */
    const char *person;       /* --person ID */
    int         show_personal; /* --show-personal (trace, person); --redact: 0, the default */
    int         dry_run;      /* --dry-run (retention run) */
    const char *arg2;         /* second positional argument (connectors pause NAME) */
    const char *token_file;   /* --token-file FILE: admin API token (reload, connectors) */
} cli_opts;

static int parse_opts(int argc, char **argv, int start, cli_opts *o)
{
    for (int i = start; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) o->config = argv[++i];
        else if (strcmp(a, "--db") == 0 && i + 1 < argc) o->db = argv[++i];
        else if (strcmp(a, "--json") == 0) o->json = 1;
        else if (strcmp(a, "--brokers") == 0 && i + 1 < argc) o->brokers = atoi(argv[++i]);
        else if (strcmp(a, "--topic") == 0 && i + 1 < argc) o->topic = argv[++i];
        else if (strcmp(a, "--partitions") == 0 && i + 1 < argc) o->partitions = atoi(argv[++i]);
        else if (strcmp(a, "--bootstrap-file") == 0 && i + 1 < argc) o->bootstrap_file = argv[++i];
        else if (strcmp(a, "--schemas") == 0 && i + 1 < argc) o->schemas = argv[++i];
        else if (strcmp(a, "--reason") == 0 && i + 1 < argc) o->reason = argv[++i];
        else if (strcmp(a, "--tenant") == 0 && i + 1 < argc) o->tenant = argv[++i];
        else if (strcmp(a, "--from") == 0 && i + 1 < argc) o->from = argv[++i];
        else if (strcmp(a, "--to") == 0 && i + 1 < argc) o->to = argv[++i];
        else if (strcmp(a, "--today") == 0 && i + 1 < argc) o->today = argv[++i];
        else if (strcmp(a, "--audit-key") == 0 && i + 1 < argc) o->audit_key = argv[++i];
        else if (strcmp(a, "--checkpoints") == 0 && i + 1 < argc) o->checkpoints = argv[++i];
        else if (strcmp(a, "--file") == 0 && i + 1 < argc) o->file = argv[++i];
        else if ((strcmp(a, "-o") == 0 || strcmp(a, "--out") == 0) && i + 1 < argc) o->out = argv[++i];
        else if (strcmp(a, "--correlation") == 0 && i + 1 < argc) o->correlation = argv[++i];
        else if (strcmp(a, "--person") == 0 && i + 1 < argc) o->person = argv[++i];
        else if (strcmp(a, "--show-personal") == 0) o->show_personal = 1;
        else if (strcmp(a, "--redact") == 0) o->show_personal = 0;
        else if (strcmp(a, "--dry-run") == 0) o->dry_run = 1;
        else if (strcmp(a, "--token-file") == 0 && i + 1 < argc) o->token_file = argv[++i];
        else if (a[0] == '-' && a[1]) { fprintf(stderr, "relais: unknown option '%s'\n", a); return -1; }
        else if (!o->arg) o->arg = a;
        else if (!o->arg2 && strcmp(argv[1], "connectors") == 0) o->arg2 = a;
        else { fprintf(stderr, "relais: unexpected argument '%s'\n", a); return -1; }
    }
    return 0;
}

static relais_config *load_config_or_report(const char *path)
{
    relais_errlist errs;
    relais_errlist_init(&errs);
    relais_config *c = relais_config_load(path, &errs);
    if (!c) relais_errlist_print(&errs, stderr);
    relais_errlist_free(&errs);
    return c;
}

static void set_log_level(const char *lvl)
{
    if (!lvl) return;
    if (strcmp(lvl, "error") == 0) relais_log_set_level(RELAIS_LOG_ERROR);
    else if (strcmp(lvl, "warn") == 0) relais_log_set_level(RELAIS_LOG_WARN);
    else if (strcmp(lvl, "debug") == 0) relais_log_set_level(RELAIS_LOG_DEBUG);
    else relais_log_set_level(RELAIS_LOG_INFO);
}

static int cmd_check(const cli_opts *o)
{
    if (!o->config) { fprintf(stderr, "relais check: -c FILE is required\n"); return 2; }
    relais_config *c = load_config_or_report(o->config);
    if (!c) return 1;
    printf("%s: valid (%zu connector(s), %zu route(s))\n", o->config, c->n_connectors, c->n_routes);
    relais_config_destroy(c);
    return 0;
}

static int cmd_run(const cli_opts *o)
{
    if (!o->config) { fprintf(stderr, "relais run: -c FILE is required\n"); return 2; }
    relais_config *c = load_config_or_report(o->config);
    if (!c) return 1;
    set_log_level(c->hub.log_level);
    char err[1024];
    relais_hub *h = relais_hub_new(c, err, sizeof err);
    if (!h) {
        fprintf(stderr, "relais: %s\n", err);
        relais_config_destroy(c);
        return 1;
    }
    g_running_hub = h;
    install_signals();
    int rc = 0;
    if (relais_hub_start(h, err, sizeof err) != 0) {
        fprintf(stderr, "relais: %s\n", err);
        rc = 1;
    } else {
        printf("relais: running; Kafka bootstrap %s%s%s (state in %s)\n",
               relais_bus_bootstrap(relais_hub_bus(h)),
               relais_hub_admin_url(h) ? ", admin " : "",
               relais_hub_admin_url(h) ? relais_hub_admin_url(h) : "", c->hub.state_dir);
        fflush(stdout);
        relais_hub_run(h);
        relais_logf(RELAIS_LOG_INFO, "hub", "stopping");
    }
    relais_hub_destroy(h);
    g_running_hub = NULL;
    relais_config_destroy(c);
    if (rc == 0) relais_logf(RELAIS_LOG_INFO, "hub", "stopped");
    return rc;
}

/* Who runs this command, for the journal: "USER@host". */
static void whoami(char *buf, size_t len)
{
    char host[64] = "host";
    gethostname(host, sizeof host - 1);
    snprintf(buf, len, "%.60s@%.60s", getenv("USER") ? getenv("USER") : "?", host);
}

/* The journal's conninfo: --db, then RELAIS_DB, then c's (c may be NULL). */
static const char *conninfo_of(const cli_opts *o, const relais_config *c)
{
    const char *env = getenv("RELAIS_DB");
    return o->db ? o->db : env ? env : c ? c->journal.conninfo : NULL;
}

/* Where the journal, the key and the checkpoints are: options, then the
 * environment, then the config. Strings point into o, the environment or
 * the buffers. */
typedef struct audit_where { const char *conninfo, *key, *cps; char keybuf[1024], cpsbuf[1024]; } audit_where;

static void audit_locate(const cli_opts *o, const relais_config *c, audit_where *w)
{
    w->keybuf[0] = w->cpsbuf[0] = '\0';
    if (c) relais_auditlog_paths(c, w->keybuf, sizeof w->keybuf, w->cpsbuf, sizeof w->cpsbuf);
    w->conninfo = conninfo_of(o, c);
    w->key = o->audit_key ? o->audit_key : getenv("RELAIS_AUDIT_KEY_FILE") ? getenv("RELAIS_AUDIT_KEY_FILE")
           : w->keybuf[0] ? w->keybuf : NULL;
    w->cps = o->checkpoints ? o->checkpoints : getenv("RELAIS_AUDIT_CHECKPOINTS") ? getenv("RELAIS_AUDIT_CHECKPOINTS")
           : w->cpsbuf[0] ? w->cpsbuf : NULL;
}

/* The journal's conninfo: --db, RELAIS_DB, or the configuration's (*c is
 * then the loaded configuration, the caller destroys it; else NULL). NULL
 * after saying why. */
static const char *journal_conninfo(const cli_opts *o, relais_config **c)
{
    *c = NULL;
    if (!conninfo_of(o, NULL) && o->config && !(*c = load_config_or_report(o->config))) return NULL;
    const char *conninfo = conninfo_of(o, *c);
    if (!conninfo) fprintf(stderr, "relais: no journal: give -c FILE, --db CONNINFO or RELAIS_DB\n");
    return conninfo;
}

static relais_journal *open_reader(const cli_opts *o)
{
    relais_config *c;
    const char *conninfo = journal_conninfo(o, &c);
    if (!conninfo) {
        relais_config_destroy(c);
        return NULL;
    }
    char err[512];
    /* replay and discard write signed steps: with the audit key when it can
     * be found (--audit-key, RELAIS_AUDIT_KEY_FILE, or the config's); the
     * stream names who ran the command */
    audit_where w;
    audit_locate(o, c, &w);
    unsigned char *key = NULL;
    size_t keylen = 0;
    if (w.key && access(w.key, F_OK) == 0 && relais_auditlog_key(w.key, 0, &key, &keylen, err, sizeof err) != 0) {
        fprintf(stderr, "relais: %s\n", err);
        relais_config_destroy(c);
        return NULL;
    }
    char who[200], me[130];
    whoami(me, sizeof me);
    snprintf(who, sizeof who, "cli/%s", me);
    relais_journal_opts jo = { .conninfo = conninfo, .writer = 0, .audit_key = key, .audit_keylen = keylen,
                               .audit_checkpoints = key ? w.cps : NULL, .audit_name = who };
    relais_journal *j = relais_journal_open(&jo, err, sizeof err);
    if (!j) fprintf(stderr, "relais: journal: %s\n", err);
    if (key) OPENSSL_cleanse(key, keylen);
    free(key);
    relais_config_destroy(c);
    return j;
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* The data of the events of a trace or person answer (hub/personal.h):
 * personal fields masked, or with --show-personal shown once each read is
 * journaled (a signed step personal_data_read on the event: who, as which
 * database role, what was asked; nothing is shown when the journal does
 * not take it). 0, or -1 after saying why. */
static int add_payloads(const cli_opts *o, relais_journal *j, json_t *answer, const char *cmd)
{
    relais_config *c = o->config ? load_config_or_report(o->config) : NULL;
    if (o->config && !c) return -1;
    const char *conninfo = conninfo_of(o, c);
    char err[1024] = "no journal", role[128];
    size_t shown = 0, i;
    json_t *ev;
    int rc = -1;
    relais_personal *p = relais_personal_load(c && c->schemas.dir ? c->schemas.dir : RELAIS_DEFAULT_SCHEMA_DIR,
                                               err, sizeof err);
    if (!p || !conninfo || relais_personal_attach(answer, conninfo, p, o->show_personal, &shown, role, sizeof role,
                                                  err, sizeof err) != 0) {
        fprintf(stderr, "relais %s: %s\n", cmd, err);
        goto out;
    }
    char me[130], detail[700];
    whoami(me, sizeof me);
    snprintf(detail, sizeof detail, "%s as %.60s: relais %s --show-personal %.400s", me, role, cmd, o->arg);
    json_array_foreach(json_object_get(answer, "events"), i, ev) {
        if (!shown || !json_object_get(ev, "data") || json_is_true(json_object_get(ev, "data_redacted"))) continue;
        if (relais_journal_note(j, json_string_value(json_object_get(ev, "id")), "personal_data_read", NULL,
                                detail, err, sizeof err) != 0) {
            fprintf(stderr, "relais %s: the read of personal data could not be journaled, nothing shown: %s\n", cmd, err);
            goto out;
        }
    }
    rc = 0;
out:
    relais_personal_destroy(p);
    relais_config_destroy(c);
    return rc;
}

/* The event's payload line (add_payloads): its data, or why there is none. */
static void print_payload(json_t *ev, const char *indent)
{
    json_t *d = json_object_get(ev, "data");
    if (json_object_get(ev, "purged_at")) {
        printf("%sdata purged by retention at %s (its SHA-256 is kept: the trail still verifies)\n", indent,
               json_string_value(json_object_get(ev, "purged_at")));
    } else if (json_object_get(ev, "data_withheld")) {
        printf("%sdata not shown: %s\n", indent, json_string_value(json_object_get(ev, "data_withheld")));
    } else if (d) {
        char *s = json_dumps(d, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
        printf("%sdata %s\n", indent, s ? s : "?");
        free(s);
    }
}

static void print_redaction_note(json_t *answer)
{
    size_t i;
    json_t *ev;
    int redacted = 0;
    json_int_t in_details = 0;
    json_array_foreach(json_object_get(answer, "events"), i, ev) {
        redacted |= json_is_true(json_object_get(ev, "data_redacted"));
        in_details += json_integer_value(json_object_get(ev, "details_redacted"));
    }
    if (!redacted) return;
    printf("personal fields are masked (" RELAIS_PERSONAL_MASK "); --show-personal shows them "
           "and journals the read\n");
    if (in_details)
        printf("%lld personal value(s) masked in steps' details too (a package quoted the record)\n",
               (long long)in_details);
}

static void print_trace_text(json_t *t)
{
    json_t *evs = json_object_get(t, "events");
    size_t i;
    json_t *ev;
    if (json_array_size(evs) == 0 && json_array_size(json_object_get(t, "rejections")) == 0) {
        printf("nothing known about %s\n", jstr(t, "query"));
        return;
    }
    json_array_foreach(evs, i, ev) {
        printf("event %s  %s\n", jstr(ev, "id"), jstr(ev, "type"));
        printf("  source %s  record %s  tenant %s\n", jstr(ev, "source"), jstr(ev, "recordid"), jstr(ev, "tenant"));
        printf("  subject %s  correlation %s\n", *jstr(ev, "subject") ? jstr(ev, "subject") : "-",
               jstr(ev, "correlationid"));
        print_payload(ev, "  ");
        size_t k;
        json_t *st;
        json_array_foreach(json_object_get(ev, "steps"), k, st) {
            json_t *dst = json_object_get(st, "destination");
            json_t *att = json_object_get(st, "attempt");
            json_t *sta = json_object_get(st, "status");
            char extra[96] = "";
            if (json_is_integer(att) && json_integer_value(att) > 0)
                snprintf(extra, sizeof extra, " attempt %lld", (long long)json_integer_value(att));
            char status[32] = "";
            if (json_is_integer(sta) && json_integer_value(sta) != 0)
                snprintf(status, sizeof status, " -> %lld", (long long)json_integer_value(sta));
            printf("  %s  %-16s %s%s%s%s%s\n", jstr(st, "at"), jstr(st, "step"),
                   json_is_string(dst) ? json_string_value(dst) : "", extra, status,
                   *jstr(st, "detail") ? "  " : "", jstr(st, "detail"));
        }
        json_t *d;
        json_array_foreach(json_object_get(ev, "deliveries"), k, d) {
            printf("  delivery %lld to %s: %s after %lld attempt(s)\n",
                   (long long)json_integer_value(json_object_get(d, "id")), jstr(d, "destination"),
                   jstr(d, "status"), (long long)json_integer_value(json_object_get(d, "attempts")));
        }
    }
    json_t *r;
    json_array_foreach(json_object_get(t, "rejections"), i, r) {
        printf("rejected %s  source %s  record %s  at %s: %s\n", jstr(r, "at"), jstr(r, "source"),
               jstr(r, "record_id"), jstr(r, "location"), jstr(r, "reason"));
    }
}

static int cmd_trace(const cli_opts *o)
{
    if (!o->arg) { fprintf(stderr, "relais trace: an ID is required\n"); return 2; }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    json_t *t = relais_journal_trace(j, o->arg, err, sizeof err);
    int payloads = t ? add_payloads(o, j, t, "trace") : 0;
    relais_journal_close(j);
    if (!t) { fprintf(stderr, "relais trace: %s\n", err); return 1; }
    if (payloads != 0) { json_decref(t); return 1; }
    int found = json_array_size(json_object_get(t, "events")) > 0 ||
                json_array_size(json_object_get(t, "rejections")) > 0;
    if (o->json) {
        char *s = json_dumps(t, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) { puts(s); free(s); }
    } else {
        print_trace_text(t);
        print_redaction_note(t);
    }
    json_decref(t);
    return found ? 0 : 1;
}

static int cmd_dlq(const cli_opts *o)
{
    if (!o->arg || strcmp(o->arg, "list") != 0) { fprintf(stderr, "usage: relais dlq list [-c FILE] [--json]\n"); return 2; }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    json_t *l = relais_journal_dlq_list(j, 1000, err, sizeof err);
    relais_journal_close(j);
    if (!l) { fprintf(stderr, "relais dlq: %s\n", err); return 1; }
    if (o->json) {
        char *s = json_dumps(l, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) { puts(s); free(s); }
    } else {
        size_t i;
        json_t *d;
        printf("%-8s %-36s %-16s %-8s %s\n", "DELIVERY", "EVENT", "DESTINATION", "ATTEMPTS", "LAST ANSWER");
        json_array_foreach(l, i, d) {
            printf("%-8lld %-36s %-16s %-8lld %lld %s\n",
                   (long long)json_integer_value(json_object_get(d, "id")), jstr(d, "event_id"),
                   jstr(d, "destination"), (long long)json_integer_value(json_object_get(d, "attempts")),
                   (long long)json_integer_value(json_object_get(d, "last_status")), jstr(d, "last_detail"));
        }
        printf("%zu dead-lettered deliver%s\n", json_array_size(l), json_array_size(l) == 1 ? "y" : "ies");
    }
    json_decref(l);
    return 0;
}

static int cmd_replay(const cli_opts *o)
{
    if (!o->arg) { fprintf(stderr, "relais replay: an ID is required\n"); return 2; }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    int count = 0;
    int rc = relais_journal_replay(j, o->arg, &count, err, sizeof err);
    relais_journal_close(j);
    if (rc != 0) { fprintf(stderr, "relais replay: %s\n", err); return 1; }
    if (count == 0) { fprintf(stderr, "relais replay: no dead-lettered delivery matches %s\n", o->arg); return 1; }
    printf("replayed %d deliver%s; a running hub delivers %s within its poll interval\n", count,
           count == 1 ? "y" : "ies", count == 1 ? "it" : "them");
    return 0;
}

/* Print s left-aligned in `width` columns, counting UTF-8 characters (not
 * bytes: "Éclairage public" is 16 columns), then one space. */
static void col(const char *s, int width)
{
    int n = 0;
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        if ((*p & 0xC0) != 0x80) n++;
    fputs(s ? s : "", stdout);
    for (; n < width; n++) putchar(' ');
    putchar(' ');
}

/* relais person ID: every event about one person and the packages that got them */
static int cmd_person(const cli_opts *o)
{
    if (!o->arg) { fprintf(stderr, "relais person: an ID is required (email, phone, person/..., a package's id)\n"); return 2; }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    json_t *r = relais_journal_person(j, o->arg, err, sizeof err);
    int payloads = r ? add_payloads(o, j, r, "person") : 0;
    relais_journal_close(j);
    if (!r) { fprintf(stderr, "relais person: %s\n", err); return 1; }
    if (payloads != 0) { json_decref(r); return 1; }
    if (o->json) {
        char *txt = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) { puts(txt); free(txt); }
    } else {
        size_t i;
        json_t *e;
        json_t *evs = json_object_get(r, "events"), *pk = json_object_get(r, "packages");
        printf("Events about %s: %zu\n", o->arg, json_array_size(evs));
        json_array_foreach(evs, i, e) {
            printf("  %s  ", jstr(e, "received_at"));
            col(jstr(e, "type"), 40);
            col(jstr(e, "source"), 14);
            printf("%s\n", jstr(e, "subject"));
            print_payload(e, "    ");
        }
        printf("Packages that received them: %zu\n", json_array_size(pk));
        json_array_foreach(pk, i, e) {
            fputs("  ", stdout);
            col(jstr(e, "destination"), 16);
            printf("%lld event(s), %s to %s\n", (long long)json_integer_value(json_object_get(e, "events")),
                   jstr(e, "first"), jstr(e, "last"));
        }
        print_redaction_note(r);
    }
    json_decref(r);
    return 0;
}

/* relais sla: open requests past their commitment, share kept per category */
static int cmd_sla(const cli_opts *o)
{
    relais_date today, from, to;
    if (o->today ? relais_date_parse(o->today, &today) != 0 : 0) {
        fprintf(stderr, "relais sla: --today '%s': expected YYYY-MM-DD\n", o->today);
        return 2;
    }
    if (!o->today) today = relais_paris_date(relais_now_us() / 1000000);
    to = today;
    from = relais_date_from_days(relais_date_days(today) - 29);
    if ((o->from && relais_date_parse(o->from, &from) != 0) || (o->to && relais_date_parse(o->to, &to) != 0)) {
        fprintf(stderr, "relais sla: --from/--to: expected YYYY-MM-DD\n");
        return 2;
    }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    json_t *r = relais_sla_report(j, o->tenant, from, to, today, err, sizeof err);
    relais_journal_close(j);
    if (!r) { fprintf(stderr, "relais sla: %s\n", err); return 1; }
    if (o->json) {
        char *txt = json_dumps(r, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (txt) { puts(txt); free(txt); }
        json_decref(r);
        return 0;
    }
    size_t i;
    json_t *e;
    json_t *od = json_object_get(r, "overdue");
    printf("Open requests past their commitment on %s: %zu\n", jstr(r, "today"), json_array_size(od));
    if (json_array_size(od)) {
        printf("  %-10s %-36s %-22s %-10s %-10s %s\n", "TENANT", "REQUEST", "CATEGORY", "OPENED", "DEADLINE",
               "LATE (working days)");
        json_array_foreach(od, i, e) {
            char opened[11];
            snprintf(opened, sizeof opened, "%s", jstr(e, "opened_at"));
            fputs("  ", stdout);
            col(jstr(e, "tenant"), 10);
            col(jstr(e, "subject"), 36);
            col(jstr(e, "category"), 22);
            col(opened, 10);
            col(jstr(e, "deadline"), 10);
            printf("%lld\n", (long long)json_integer_value(json_object_get(e, "late_days")));
        }
    }
    printf("Commitments per category, requests closed from %s to %s:\n", jstr(r, "from"), jstr(r, "to"));
    printf("  %-10s %-22s %6s %8s %7s %5s %s\n", "TENANT", "CATEGORY", "OPEN", "OVERDUE", "CLOSED", "KEPT", "SHARE KEPT");
    json_array_foreach(json_object_get(r, "categories"), i, e) {
        json_t *sh = json_object_get(e, "share_kept");
        char share[16] = "-";
        if (json_is_real(sh)) snprintf(share, sizeof share, "%.0f%%", json_real_value(sh) * 100.0);
        fputs("  ", stdout);
        col(jstr(e, "tenant"), 10);
        col(jstr(e, "category"), 22);
        printf("%6lld %8lld %7lld %5lld %s\n",
               (long long)json_integer_value(json_object_get(e, "open")),
               (long long)json_integer_value(json_object_get(e, "overdue")),
               (long long)json_integer_value(json_object_get(e, "closed")),
               (long long)json_integer_value(json_object_get(e, "kept")), share);
    }
    json_decref(r);
    return 0;
}

/* ---- calls to the running hub's admin API ------------------------------------
 * What the hub holds in memory (its mappings, which connectors are paused)
 * can only be changed through the running process: these commands find its
 * admin address in state_dir/admin.txt and call the admin API with the
 * caller's bearer token, so that the CLI is authorised by the same roles as
 * HTTP callers (docs/SECURITY.md "Roles and tokens"). The token comes from
 * --token-file FILE (its first line) or the environment's RELAIS_ADMIN_TOKEN,
 * never from the command line, where `ps` would show it. */

typedef struct cli_buf { char *data; size_t len; } cli_buf;
#define CLI_ANSWER_MAX (4u << 20)
static size_t cli_collect(char *p, size_t size, size_t n, void *ud)
{
    cli_buf *b = ud;
    size_t k = size * n;
    if (b->len + k > CLI_ANSWER_MAX) return 0;   /* curl: write error */
    char *d = realloc(b->data, b->len + k + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, k);
    b->data = d;
    b->len += k;
    d[b->len] = '\0';
    return k;
}

/* The caller's token: NULL with *ok = 1 when none is given, NULL with *ok = 0
 * (message printed) when the file cannot be read or is empty. */
static char *admin_token(const cli_opts *o, const char *cmd, int *ok)
{
    *ok = 1;
    if (!o->token_file) {
        const char *env = getenv("RELAIS_ADMIN_TOKEN");
        return env && *env ? strdup(env) : NULL;
    }
    char err[512];
    char *t = relais_read_file(o->token_file, 4096, NULL, err, sizeof err);
    if (!t) {
        fprintf(stderr, "relais %s: --token-file: %s\n", cmd, err);
        *ok = 0;
        return NULL;
    }
    t[strcspn(t, "\r\n")] = '\0';
    if (!*t) {
        fprintf(stderr, "relais %s: --token-file %s: the first line is empty\n", cmd, o->token_file);
        free(t);
        *ok = 0;
        return NULL;
    }
    return t;
}

/* METHOD path on the running hub of o->config. 0 with *status and *ans (the
 * answer's JSON, NULL when it is not JSON; the caller frees it) once the hub
 * answered; -1 (message printed) when it could not be called. 401 and 403
 * are explained here, since their fix is the caller's token. */
static int admin_call(const cli_opts *o, const char *cmd, const char *method, const char *path, long *status,
                      json_t **ans)
{
    *ans = NULL;
    if (!o->config) {
        fprintf(stderr, "relais %s: -c FILE is required (the running hub's configuration)\n", cmd);
        return -1;
    }
    relais_config *c = load_config_or_report(o->config);
    if (!c) return -1;
    char apath[4200], url[600] = "";
    snprintf(apath, sizeof apath, "%s/admin.txt", c->hub.state_dir);
    relais_config_destroy(c);
    FILE *f = fopen(apath, "r");
    if (!f || !fgets(url, 200, f)) {
        if (f) fclose(f);
        fprintf(stderr, "relais %s: no running hub with an admin address (%s not found)\n", cmd, apath);
        return -1;
    }
    fclose(f);
    url[strcspn(url, "\r\n")] = '\0';
    strncat(url, path, sizeof url - strlen(url) - 1);
    int ok;
    char *token = admin_token(o, cmd, &ok);
    if (!ok) return -1;
    char auth[4200];
    struct curl_slist *hdrs = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        OPENSSL_cleanse(token, strlen(token));
        free(token);
        hdrs = curl_slist_append(NULL, auth);
        OPENSSL_cleanse(auth, sizeof auth);
        if (!hdrs) return -1;
    }
    CURL *cu = curl_easy_init();
    if (!cu) { curl_slist_free_all(hdrs); return -1; }
    cli_buf b = { NULL, 0 };
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(cu, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0) curl_easy_setopt(cu, CURLOPT_POSTFIELDS, "");
    if (hdrs) curl_easy_setopt(cu, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, cli_collect);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, &b);
    CURLcode rc = curl_easy_perform(cu);
    *status = 0;
    curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(cu);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) {
        fprintf(stderr, "relais %s: %s %s: %s\n", cmd, method, url, curl_easy_strerror(rc));
        free(b.data);
        return -1;
    }
    *ans = b.data ? json_loads(b.data, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(*ans, "error"));
    if (*status == 401)
        fprintf(stderr, "relais %s: the hub wants a token (401): put one in RELAIS_ADMIN_TOKEN or give "
                        "--token-file FILE (relais token new)\n", cmd);
    else if (*status == 403)
        fprintf(stderr, "relais %s: the hub refused the token (403): %s\n", cmd, e ? e : "its role is too low");
    free(b.data);
    return 0;
}

/* relais reload -c FILE: the running hub loads its mapping files again (admin). */
static int cmd_reload(const cli_opts *o)
{
    long status;
    json_t *ans;
    if (admin_call(o, "reload", "POST", "/reload", &status, &ans) != 0) return 1;
    if (status == 200) {
        printf("reloaded %lld mapping(s)", (long long)json_integer_value(json_object_get(ans, "reloaded")));
        if (json_is_integer(json_object_get(ans, "tokens")))
            printf(" and %lld admin token(s)", (long long)json_integer_value(json_object_get(ans, "tokens")));
        putchar('\n');
    } else if (status != 401 && status != 403) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        fprintf(stderr, "relais reload: nothing changed:\n%s\n", e ? e : "(no error text)");
    }
    json_decref(ans);
    return status == 200 ? 0 : 1;
}

/* relais connectors list|pause NAME|resume NAME -c FILE: the running hub's
 * instances (auditor), or pause and resume one (operator). */
static int cmd_connectors_admin(const cli_opts *o)
{
    int list = strcmp(o->arg, "list") == 0, pause = strcmp(o->arg, "pause") == 0;
    char cmd[32], path[300];
    snprintf(cmd, sizeof cmd, "connectors %s", o->arg);
    if (list) {
        snprintf(path, sizeof path, "/connectors");
    } else {
        if (!o->arg2 || !*o->arg2 || strchr(o->arg2, '/') || strlen(o->arg2) > 200) {
            fprintf(stderr, "relais %s: a connector instance NAME is required (relais connectors list -c FILE)\n", cmd);
            return 2;
        }
        snprintf(path, sizeof path, "/connectors/%s/%s", o->arg2, pause ? "pause" : "resume");
    }
    long status;
    json_t *ans;
    if (admin_call(o, cmd, list ? "GET" : "POST", path, &status, &ans) != 0) return 1;
    int rc = status == 200 ? 0 : 1;
    if (status != 200 && status != 401 && status != 403) {
        const char *e = json_string_value(json_object_get(ans, "error"));
        fprintf(stderr, "relais %s: %s (%ld)\n", cmd, e ? e : "the hub did not answer as expected", status);
    } else if (status == 200 && (o->json || !list)) {
        if (o->json) {
            char *t = json_dumps(ans, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (t) { puts(t); free(t); }
        } else {
            printf("%s: %s\n", jstr(ans, "connector"), jstr(ans, "status"));
        }
    } else if (status == 200) {
        printf("%-16s %-10s %-6s %-8s %-9s %6s %6s %s\n", "NAME", "TYPE", "MODE", "PAUSED", "CIRCUIT", "QUEUED", "HELD",
               "PAUSED BY");
        size_t i;
        json_t *e;
        json_array_foreach(ans, i, e) {
            json_t *q = json_object_get(e, "queued"), *h = json_object_get(e, "held");
            char qs[24] = "-", hs[24] = "-";
            if (json_is_integer(q)) snprintf(qs, sizeof qs, "%lld", (long long)json_integer_value(q));
            if (json_is_integer(h)) snprintf(hs, sizeof hs, "%lld", (long long)json_integer_value(h));
            printf("%-16s %-10s %-6s %-8s %-9s %6s %6s %s\n", jstr(e, "name"), jstr(e, "type"), jstr(e, "mode"),
                   json_is_true(json_object_get(e, "paused")) ? "yes" : "no",
                   json_object_get(e, "circuit") ? jstr(e, "circuit") : "-", qs, hs, jstr(e, "paused_by"));
        }
    }
    json_decref(ans);
    return rc;
}

/* relais db migrate [-c FILE | --db CONNINFO]: bring the journal's schema to
 * this build's version, as whoever connects (the schema owner, when hubs run
 * as relais_hub members and may create nothing; docs/SECURITY.md "Who
 * migrates"). PostgreSQL's notices (roles.sql's warnings) go to stderr. */
static int cmd_db(const cli_opts *o)
{
    if (!o->arg || strcmp(o->arg, "migrate") != 0) {
        fprintf(stderr, "usage: relais db migrate [-c FILE | --db CONNINFO]\n");
        return 2;
    }
    relais_config *c;
    const char *conninfo = journal_conninfo(o, &c);
    if (!conninfo) {
        relais_config_destroy(c);
        return 1;
    }
    PGconn *pc = PQconnectdb(conninfo);
    relais_config_destroy(c);
    if (PQstatus(pc) != CONNECTION_OK) {
        fprintf(stderr, "relais db migrate: cannot connect: %s", PQerrorMessage(pc));
        PQfinish(pc);
        return 1;
    }
    char err[1024];
    int applied = 0;
    int rc = relais_migrations_apply(pc, &applied, err, sizeof err);
    PQfinish(pc);
    if (rc != 0) {
        fprintf(stderr, "relais db migrate: %s\n", err);
        return 1;
    }
    if (applied) printf("schema at version %d: %d migration(s) applied\n", relais_migrations_latest(), applied);
    else printf("schema at version %d: up to date, nothing applied\n", relais_migrations_latest());
    return 0;
}

static int cmd_discard(const cli_opts *o)
{
    if (!o->arg) { fprintf(stderr, "relais discard: an ID is required\n"); return 2; }
    relais_journal *j = open_reader(o);
    if (!j) return 1;
    char err[512];
    int count = 0;
    int rc = relais_journal_discard(j, o->arg, o->reason, &count, err, sizeof err);
    relais_journal_close(j);
    if (rc != 0) { fprintf(stderr, "relais discard: %s\n", err); return 1; }
    if (count == 0) { fprintf(stderr, "relais discard: no dead-lettered delivery matches %s\n", o->arg); return 1; }
    printf("discarded %d deliver%s\n", count, count == 1 ? "y" : "ies");
    return 0;
}

static int cmd_connectors(const cli_opts *o)
{
    if (o->arg && (!strcmp(o->arg, "list") || !strcmp(o->arg, "pause") || !strcmp(o->arg, "resume")))
        return cmd_connectors_admin(o);
    if (!o->arg || strcmp(o->arg, "describe") != 0 || o->arg2) {
        fprintf(stderr, "usage: relais connectors describe [--json]\n"
                        "       relais connectors list -c FILE [--json]\n"
                        "       relais connectors (pause | resume) NAME -c FILE\n");
        return 2;
    }
    size_t n;
    const relais_connector *const *all = relais_registry_all(&n);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *modes = json_array();
        if (all[i]->modes & RELAIS_MODE_SOURCE) json_array_append_new(modes, json_string("source"));
        if (all[i]->modes & RELAIS_MODE_SINK) json_array_append_new(modes, json_string("sink"));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:i, s:o, s:o}", "name", all[i]->name,
                                             "description", all[i]->description ? all[i]->description : "",
                                             "abi_version", all[i]->abi_version, "modes", modes,
                                             "options", relais_options_describe(all[i]->options)));
    }
    if (o->json) {
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) { puts(s); free(s); }
    } else {
        size_t i;
        json_t *c;
        json_array_foreach(arr, i, c) {
            printf("%s - %s\n  modes:", jstr(c, "name"), jstr(c, "description"));
            size_t k;
            json_t *m;
            json_array_foreach(json_object_get(c, "modes"), k, m) printf(" %s", json_string_value(m));
            printf("\n  options:\n");
            json_t *op;
            json_array_foreach(json_object_get(c, "options"), k, op) {
                json_t *def = json_object_get(op, "default");
                printf("    %-20s %-9s %s%s%s%s\n", jstr(op, "name"), jstr(op, "type"),
                       json_is_true(json_object_get(op, "required")) ? "(required) " : "",
                       json_is_string(def) ? "(default " : "", json_is_string(def) ? json_string_value(def) : "",
                       json_is_string(def) ? ") " : "");
                printf("    %-20s %s\n", "", jstr(op, "desc"));
            }
        }
    }
    json_decref(arr);
    return 0;
}

static int cmd_broker(const cli_opts *o)
{
    char err[512];
    relais_mock_broker *m = relais_mock_broker_start(o->brokers > 0 ? o->brokers : 1,
                                                     o->topic ? o->topic : "relais.events",
                                                     o->partitions > 0 ? o->partitions : 6, err, sizeof err);
    if (!m) { fprintf(stderr, "relais broker: %s\n", err); return 1; }
    install_signals();
    const char *bs = relais_mock_broker_bootstrap(m);
    if (o->bootstrap_file) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s.tmp", o->bootstrap_file);
        FILE *f = fopen(tmp, "w");
        if (f) { fprintf(f, "%s\n", bs); fclose(f); rename(tmp, o->bootstrap_file); }
    }
    printf("relais broker: bootstrap.servers=%s\n", bs);
    fflush(stdout);
    while (!g_stop) {
        struct timespec ts = { 0, 100 * 1000000L };
        nanosleep(&ts, NULL);
    }
    relais_mock_broker_stop(m);
    return 0;
}

static int cmd_test(const cli_opts *o)
{
    if (!o->arg) { fprintf(stderr, "usage: relais test DIR [--schemas DIR]\n"); return 2; }
    return relais_maptest_run(o->arg, o->schemas, stdout, NULL);
}

/* relais token new --name NAME --role ROLE: a new bearer token of the admin
 * API. stdout: the token, the only time it is shown; stderr: the line
 * "<name> <role> sha256:<hex>" to add to the hub.admin_tokens file, and
 * nothing else when it succeeds (so `2>>FILE` works; docs/SECURITY.md). */
static int cmd_token(int argc, char **argv)
{
    const char *name = NULL, *role = NULL;
    if (argc < 3 || strcmp(argv[2], "new") != 0) {
        fprintf(stderr, "usage: relais token new --name NAME --role auditor|operator|admin\n");
        return 2;
    }
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0 && i + 1 < argc) name = argv[++i];
        else if (strcmp(argv[i], "--role") == 0 && i + 1 < argc) role = argv[++i];
        else {
            fprintf(stderr, "relais token new: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    relais_role r = RELAIS_ROLE_NONE;
    if (!name || !role) {
        fprintf(stderr, "usage: relais token new --name NAME --role auditor|operator|admin\n");
        return 2;
    }
    if (relais_role_parse(role, &r) != 0) {
        fprintf(stderr, "relais token new: --role '%s': expected auditor, operator or admin\n", role);
        return 2;
    }
    char token[RELAIS_TOKEN_BUF], line[RELAIS_TOKEN_LINE_BUF], err[256];
    if (relais_token_new(name, r, token, line, err, sizeof err) != 0) {
        fprintf(stderr, "relais token new: --%s\n", err);
        return strncmp(err, "name", 4) == 0 ? 2 : 1;
    }
    int rc = printf("%s\n", token) < 0 || fflush(stdout) != 0 ? 1 : 0;
    explicit_bzero(token, sizeof token);
    if (rc == 0) fprintf(stderr, "%s\n", line);
    else fprintf(stderr, "relais token new: cannot write the token\n");
    return rc;
}

/* "2026-11-26", "2026-11-26T10:00:00Z" (UTC) -> microseconds; -1 when neither. */
static int64_t parse_when(const char *s)
{
    relais_date d;
    int64_t us;
    if (relais_date_parse(s, &d) == 0) return (int64_t)relais_date_days(d) * 86400 * 1000000;
    char z[24];
    size_t n = strlen(s);
    snprintf(z, sizeof z, "%s%s", s, n == 19 ? "Z" : "");      /* UTC when no zone is given */
    if (n >= 19 && n <= 20 && z[10] == 'T' && z[19] == 'Z' && relais_rfc3339_parse_us(z, &us) == 0) return us;
    return -1;
}



/* relais audit export [-c FILE] (--from T --to T | --correlation ID | --person ID) [-o FILE] */
static int audit_export(const cli_opts *o, const relais_config *c, const audit_where *w, int64_t from, int64_t to)
{
    int kinds = (o->from || o->to) + !!o->correlation + !!o->person;
    if (kinds != 1) {
        fprintf(stderr, "relais: audit export takes one selection: --from/--to, --correlation ID or --person ID\n");
        return 2;
    }
    char err[1024], label[300];
    relais_auditlog_selection sel = { .from_us = from, .to_us = to, .correlation = o->correlation, .label = label };
    char **ids = NULL;
    size_t nids = 0;
    json_t *person = NULL;
    relais_journal *j = open_reader(o);        /* the read is journaled (personal data) */
    if (!j) return 1;
    if (o->person) {
        person = relais_journal_person(j, o->person, err, sizeof err);
        if (!person) {
            fprintf(stderr, "relais: audit export: %s\n", err);
            relais_journal_close(j);
            return 1;
        }
        json_t *evs = json_object_get(person, "events");
        ids = calloc(json_array_size(evs) + 1, sizeof *ids);
        size_t i;
        json_t *ev;
        json_array_foreach(evs, i, ev) {
            const char *id = json_string_value(json_object_get(ev, "id"));
            if (id && ids) ids[nids++] = (char *)id;
        }
        sel.event_ids = (const char *const *)ids;
        sel.n_event_ids = nids;
        if (!nids) {                             /* nobody: an empty extract */
            sel.event_ids = NULL;
            sel.correlation = "00000000-0000-0000-0000-000000000000";
        }
        snprintf(label, sizeof label, "person %.200s", o->person);
    } else if (o->correlation) {
        snprintf(label, sizeof label, "correlation %.200s", o->correlation);
    } else {
        snprintf(label, sizeof label, "from %.40s to %.40s", o->from ? o->from : "the start", o->to ? o->to : "now");
    }
    char who[130], detail[600];
    whoami(who, sizeof who);
    snprintf(detail, sizeof detail, "%s: audit export of %s%s%s", who, label, o->out ? " to " : "",
             o->out ? o->out : "");
    int rc = 1;
    if (relais_journal_note(j, NULL, "personal_data_read", NULL, detail, err, sizeof err) != 0) {
        /* an unjournaled read holds no payload: proofs and hashes only */
        fprintf(stderr, "relais: audit export: the read could not be journaled (%s): exporting the proofs "
                        "and hashes without the event bodies\n", err);
        sel.no_bodies = 1;
    }
    FILE *f = o->out ? fopen(o->out, "w") : stdout;
    if (!f) {
        fprintf(stderr, "relais: audit export: %s: %s\n", o->out, strerror(errno));
        goto out;
    }
    long n = 0;
    int e = relais_auditlog_export(w->conninfo, &sel, w->cps, f, &n, err, sizeof err);
    if (f != stdout && fclose(f) != 0 && e == 0) {
        snprintf(err, sizeof err, "%s: %s", o->out, strerror(errno));
        e = -1;
    }
    if (e != 0) {
        fprintf(stderr, "relais: audit export: %s\n", err);
        goto out;
    }
    fprintf(stderr, "relais: exported %ld entries (%s)\n", n, label);
    rc = 0;
out:
    (void)c;
    free(ids);
    json_decref(person);
    relais_journal_close(j);
    return rc;
}

/* relais audit verify [-c FILE | --db CONNINFO --audit-key F --checkpoints F] [--from T] [--to T]
 * relais audit verify --file EXTRACT (-c FILE | --audit-key F)
 * relais audit export ... */
static int cmd_audit(const cli_opts *o)
{
    int verify = o->arg && strcmp(o->arg, "verify") == 0, export = o->arg && strcmp(o->arg, "export") == 0;
    if (!verify && !export) {
        fprintf(stderr, "relais: usage: relais audit verify|export [-c FILE] ... (relais --help)\n");
        return 2;
    }
    int64_t from = 0, to = 0;
    if ((o->from && (from = parse_when(o->from)) < 0) || (o->to && (to = parse_when(o->to)) < 0)) {
        fprintf(stderr, "relais: audit: --from/--to take YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)\n");
        return 2;
    }
    if (o->to && strlen(o->to) == 10) to += 86400LL * 1000000 - 1;   /* a day: all of it */
    relais_config *c = o->config ? load_config_or_report(o->config) : NULL;
    if (o->config && !c) return 1;
    audit_where w;
    audit_locate(o, c, &w);
    char err[1024];
    int rc;
    if (export) {
        if (!w.conninfo || !w.cps) {
            fprintf(stderr, "relais: audit export needs the journal and the checkpoint file: give -c FILE, "
                            "or --db CONNINFO --checkpoints FILE\n");
            relais_config_destroy(c);
            return 2;
        }
        rc = audit_export(o, c, &w, from, to);
        relais_config_destroy(c);
        return rc;
    }
    if (!w.key || (!o->file && (!w.conninfo || !w.cps))) {
        fprintf(stderr, "relais: audit verify needs the audit key, and (without --file) the journal and the "
                        "checkpoint file: give -c FILE, or --db CONNINFO --audit-key FILE --checkpoints FILE\n");
        relais_config_destroy(c);
        return 2;
    }
    unsigned char *key = NULL;
    size_t keylen = 0;
    if (relais_auditlog_key(w.key, 0, &key, &keylen, err, sizeof err) != 0) {
        fprintf(stderr, "relais: audit verify: %s\n", err);
        relais_config_destroy(c);
        return 1;
    }
    relais_auditlog_result res;
    if (o->file) {
        size_t len = 0;
        char *buf = relais_read_file(o->file, 0, &len, err, sizeof err);
        if (!buf) {
            rc = -1;
        } else {
            rc = relais_auditlog_verify_export(o->file, buf, len, key, keylen, stdout, &res, err, sizeof err);
            free(buf);
        }
    } else {
        rc = relais_auditlog_verify(w.conninfo, key, keylen, w.cps, from, to, stdout, &res, err, sizeof err);
    }
    OPENSSL_cleanse(key, keylen);
    free(key);
    relais_config_destroy(c);
    if (rc < 0) {
        fprintf(stderr, "relais: audit verify: %s\n", err);
        return 1;
    }
    return rc ? 1 : 0;
}

/* relais retention run -c FILE [--db CONNINFO] [--dry-run]: payloads past
 * their retention emptied, one signed step "purged" (hub/retention.h) */
static int cmd_retention(const cli_opts *o)
{
    if (!o->arg || strcmp(o->arg, "run") != 0 || !o->config) {
        fprintf(stderr, "usage: relais retention run -c FILE [--db CONNINFO] [--dry-run]\n");
        return 2;
    }
    relais_config *c = load_config_or_report(o->config);
    if (!c) return 1;
    relais_journal *j = open_reader(o);
    int rc = 1;
    if (j) {
        const char *conninfo = o->db ? o->db : getenv("RELAIS_DB") ? getenv("RELAIS_DB") : c->journal.conninfo;
        relais_retention_result res;
        char err[1024];
        if (relais_retention_run(c, conninfo, j, o->dry_run, stdout, &res, err, sizeof err) == 0) rc = 0;
        else fprintf(stderr, "relais retention: %s\n", err);
    }
    relais_journal_close(j);
    relais_config_destroy(c);
    return rc;
}

int relais_cli_main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("relais %s\n", RELAIS_VERSION_STRING);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "token") == 0) return cmd_token(argc, argv);
    cli_opts o;
    memset(&o, 0, sizeof o);
    if (parse_opts(argc, argv, 2, &o) != 0) return 2;
    if (strcmp(cmd, "run") == 0) return cmd_run(&o);
    if (strcmp(cmd, "check") == 0) return cmd_check(&o);
    if (strcmp(cmd, "trace") == 0) return cmd_trace(&o);
    if (strcmp(cmd, "dlq") == 0) return cmd_dlq(&o);
    if (strcmp(cmd, "replay") == 0) return cmd_replay(&o);
    if (strcmp(cmd, "discard") == 0) return cmd_discard(&o);
    if (strcmp(cmd, "reload") == 0) return cmd_reload(&o);
    if (strcmp(cmd, "sla") == 0) return cmd_sla(&o);
    if (strcmp(cmd, "db") == 0) return cmd_db(&o);
    if (strcmp(cmd, "person") == 0) return cmd_person(&o);
    if (strcmp(cmd, "retention") == 0) return cmd_retention(&o);
    if (strcmp(cmd, "audit") == 0) return cmd_audit(&o);
    if (strcmp(cmd, "connectors") == 0) return cmd_connectors(&o);
    if (strcmp(cmd, "broker") == 0) return cmd_broker(&o);
    if (strcmp(cmd, "test") == 0) return cmd_test(&o);
    fprintf(stderr, "relais: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
