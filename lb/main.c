/* rtmplb: command line. See ../shared/INTERFACE.md "Command line". */
#include "conf/conf.h"
#include "geo/geo.h"
#include "lb/admin/api.h"
#include "lb/proc/proc.h"
#include "lb/proc/upgrade.h"
#include "lb/log.h"
#include "lb/tls/tls.h"

#include <llhttp.h>
#include <maxminddb.h>
#include <openssl/crypto.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include <yaml.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: rtmplb -c FILE        run in the foreground; logs to stderr\n"
               "       rtmplb -t -c FILE     check FILE (and the files it names) and exit: 0 ok,\n"
               "                             2 invalid\n"
               "       rtmplb -V             version and build info\n"
               "       rtmplb -h             this help\n"
               "--version and --help are the same as -V and -h. Signals: SIGHUP reloads,\n"
               "SIGTERM/SIGINT drain then exit, SIGUSR1 reopens the access log.\n");
}

static void version(void)
{
    printf("rtmplb %s\n", RTMPLB_VERSION);
    printf("built with: libuv %s, libyaml %s, %s, llhttp %d.%d.%d, libmaxminddb %s\n",
           uv_version_string(), yaml_get_version_string(), OpenSSL_version(OPENSSL_VERSION),
           LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH,
           MMDB_lib_version());
#if defined(__SANITIZE_ADDRESS__)
    printf("sanitizers: address, undefined\n");
#endif
}

/* rtmplb -t: what the config references must be usable too. 0 or 2. */
static int check_references(const char *path, const struct conf *c)
{
    if (strcmp(c->log.access_log, "stderr") != 0 && strcmp(c->log.access_log, "off") != 0) {
        FILE *f = fopen(c->log.access_log, "a");
        if (!f) {
            fprintf(stderr, "%s: log.access_log: cannot open %s for appending: %m\n", path,
                    c->log.access_log);
            return 2;
        }
        fclose(f);
    }
    if (c->geo.database) {
        char err[512];
        struct geo_db *db = geo_open(c->geo.database, err, sizeof(err));
        if (!db) {
            fprintf(stderr, "%s:%u:%u: geo.database: %s\n", path, c->geo.database_mark.line,
                    c->geo.database_mark.col, err);
            return 2;
        }
        geo_unref(db);
    }
    /* TLS: every file readable, each key matching its certificate, no
     * certificate expired (a warning within 14 days). */
    struct lb_tls_msgs msgs = {0};
    struct lb_tls_set *tls = lb_tls_set_build(c, (int64_t)time(NULL), &msgs);
    for (size_t i = 0; i < msgs.n; i++)
        fprintf(stderr, "%s%s\n", msgs.warn[i] ? "warning: " : "", msgs.msg[i]);
    bool tls_bad = msgs.errors > 0;
    lb_tls_msgs_free(&msgs);
    lb_tls_set_unref(tls);
    if (tls_bad)
        return 2;
    char *token, terr[700];
    if (conf_admin_token_load(c, &token, terr, sizeof(terr)) < 0) {
        fprintf(stderr, "%s\n", terr);
        return 2;
    }
    free(token);
    if (conf_admin_hooks_secret_load(c, &token, terr, sizeof(terr)) < 0) {
        fprintf(stderr, "%s\n", terr);
        return 2;
    }
    free(token);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    bool test_only = false;
    int opt;
    /* --dump-schema is for the tests that keep docs/CONFIG.md honest: one
     * line per config key with its type and default; not in the usage. */
    enum { OPT_DUMP_SCHEMA = 256 };
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"dump-schema", no_argument, NULL, OPT_DUMP_SCHEMA},
        {NULL, 0, NULL, 0},
    };

    while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test_only = true;
            break;
        case 'V':
            version();
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        case OPT_DUMP_SCHEMA:
            conf_schema_dump(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!path || optind != argc) {
        usage(stderr);
        return 2;
    }

    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = true};
    struct conf *c = conf_load_file(path, &opts, &errs);
    if (!c) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.msg[i]);
        if (errs.dropped)
            fprintf(stderr, "(%zu more errors not shown)\n", errs.dropped);
        fprintf(stderr, "rtmplb: %s: configuration is invalid\n", path);
        conf_errors_free(&errs);
        return 2;
    }
    if (test_only) {
        int rc = check_references(path, c);
        if (rc == 0)
            fprintf(stderr, "rtmplb: %s: configuration is valid\n", path);
        conf_free(c);
        return rc;
    }

    signal(SIGPIPE, SIG_IGN);
    lb_upgrade_init();
    return lb_proc_run(path, c, &lb_admin_control);
}
