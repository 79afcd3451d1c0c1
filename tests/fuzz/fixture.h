/* Shared by the fuzz targets that drive the rtmp phase through fake
 * transports (fuzz_front_rtmp, fuzz_session_rtmp): the transport calls
 * that never fail, and a routing snapshot built once from YAML text. */
#ifndef RTMPLB_FUZZ_FIXTURE_H
#define RTMPLB_FUZZ_FIXTURE_H

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "conf/conf.h"
#include "lb/front/front.h"
#include "upstream/upstream.h"

static inline ssize_t fx_write(struct lb_conn *c, const void *buf, size_t len)
{
    (void)c;
    (void)buf;
    return (ssize_t)len;
}
static inline int fx_shutdown(struct lb_conn *c)
{
    (void)c;
    return 0;
}
static inline void fx_quickack(struct lb_conn *c) { (void)c; }

/* The snapshot of text, built at the first call and kept (*keep); a text
 * that does not load aborts: the fixture itself is wrong. */
static inline struct ups_snapshot *fx_snapshot(struct ups_snapshot **keep, const char *text)
{
    if (!*keep) {
        struct conf_errors errs;
        struct conf_load_opts opts = {.resolve_names = false};
        char err[128];
        struct conf *c = conf_load_buffer("f.yaml", text, strlen(text), &opts, &errs);
        if (!c)
            abort();
        *keep = ups_snapshot_build(c, NULL, 1, err, sizeof(err));
        if (!*keep)
            abort();
        conf_free(c);
    }
    return *keep;
}

#endif
