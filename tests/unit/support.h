/* Shared by unit tests: a config from text and its routing snapshot. */
#ifndef TESTS_UNIT_SUPPORT_H
#define TESTS_UNIT_SUPPORT_H

#include <stdio.h>
#include <string.h>

#include "conf/conf.h"
#include "upstream/upstream.h"

struct test_fx {
    struct conf *conf;
    struct ups_snapshot *snap;
};

/* Loads text (numeric addresses only) and builds a snapshot for n_workers;
 * fails the test, printing the config errors, if either step fails. */
static inline struct test_fx test_fx_load(const char *text, unsigned n_workers)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false};
    char err[256];
    struct test_fx f;
    f.conf = conf_load_buffer("t.yaml", text, strlen(text), &opts, &errs);
    for (size_t i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msg[i]);
    assert_non_null(f.conf);
    f.snap = ups_snapshot_build(f.conf, NULL, n_workers, err, sizeof(err));
    assert_non_null(f.snap);
    return f;
}

static inline void test_fx_free(struct test_fx *f)
{
    ups_snapshot_unref(f->snap);
    conf_free(f->conf);
}

#endif
