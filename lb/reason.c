#include "lb/reason.h"

static const char *const names[] = {
#define X(e, name, text) name,
    LB_REASON_MAP(X)
#undef X
};
static const char *const texts[] = {
#define X(e, name, text) text,
    LB_REASON_MAP(X)
#undef X
};

const char *lb_reason_name(enum lb_reason r)
{
    return (unsigned)r < LB_REASON__COUNT ? names[r] : "?";
}

const char *lb_reason_text(enum lb_reason r)
{
    return (unsigned)r < LB_REASON__COUNT ? texts[r] : "?";
}
