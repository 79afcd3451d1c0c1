/* When to batch the origin -> client direction, as pure arithmetic on a
 * clock the caller passes (pump.c applies the answers; the unit test runs
 * it on a fake clock). See struct lb_coalesce. */
#include "lb/session/internal.h"

void lb_coalesce_start(struct lb_coalesce *c, uint32_t ms)
{
    *c = (struct lb_coalesce){.ms = ms, .warm = LB_COALESCE_WARM};
}

/* The next flush: at most ms after now, on a grid of ms/4 so that the
 * sessions of a worker flush in the same pass of its loop (one wake-up for
 * many, not one each). Always later than now. */
uint64_t lb_coalesce_due(uint64_t now, uint32_t ms)
{
    uint64_t g = ms / 4 ? ms / 4 : 1; /* flushes come after 3/4..1 of the bound */
    uint64_t due = (now + ms) / g * g;
    return due > now ? due : now + 1;
}

enum lb_coal_mark lb_coalesce_after(struct lb_coalesce *c, uint64_t now, uint64_t moved,
                                    bool flush)
{
    if (!c->ms)
        return LB_COAL_KEEP;
    if (c->warm) { /* the first media goes as it comes */
        c->warm -= moved < c->warm ? moved : c->warm;
        if (c->warm)
            return LB_COAL_KEEP;
    }
    if (moved) {
        c->empty = 0;
        c->due = lb_coalesce_due(now, c->ms);
        if (c->high)
            return LB_COAL_KEEP;
        c->high = true;
        return LB_COAL_HIGH;
    }
    if (flush && c->high && ++c->empty < LB_COALESCE_QUIET) {
        c->due = lb_coalesce_due(now, c->ms); /* a gap: look again */
        return LB_COAL_KEEP;
    }
    if (flush) { /* nothing came for a while: quiet, wake on its next byte */
        c->empty = 0;
        c->due = 0;
        if (!c->high)
            return LB_COAL_KEEP;
        c->high = false;
        return LB_COAL_LOW;
    }
    /* An event that found nothing new (a write finished): while the mark
     * is high, bytes below it still need their flush. */
    if (c->high && !c->due)
        c->due = lb_coalesce_due(now, c->ms);
    return LB_COAL_KEEP;
}
