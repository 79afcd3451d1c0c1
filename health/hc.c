/* Health checking, the pure part. */
#include "health/hc.h"

static const char *names[] = {
#define X(name, text) #name,
    HC_RESULT_MAP(X)
#undef X
};
static const char *texts[] = {
#define X(name, text) text,
    HC_RESULT_MAP(X)
#undef X
};

const char *hc_result_name(enum hc_result r)
{
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

const char *hc_result_text(enum hc_result r)
{
    return (unsigned)r < sizeof(texts) / sizeof(texts[0]) ? texts[r] : "?";
}

bool hc_apply(struct hc_state *st, const struct hc_params *p, bool ok, uint64_t now_ms)
{
    if (ok) {
        st->fail_run = 0;
        if (st->ok_run < 0xffff)
            st->ok_run++;
        if (!st->up && st->ok_run >= p->rise) {
            st->up = true;
            st->since_ms = now_ms;
            return true;
        }
    } else {
        st->ok_run = 0;
        if (st->fail_run < 0xffff)
            st->fail_run++;
        if (st->up && st->fail_run >= p->fall) {
            st->up = false;
            st->since_ms = now_ms;
            return true;
        }
    }
    return false;
}

uint64_t hc_next_delay(const struct hc_params *p, double r)
{
    uint64_t j = p->jitter_ms < p->interval_ms ? p->jitter_ms : p->interval_ms;
    double d = (double)p->interval_ms - (double)j + 2.0 * (double)j * r;
    return d < 1 ? 1 : (uint64_t)d;
}

