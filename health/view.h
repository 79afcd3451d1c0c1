/* The stream index as the router's read-only view (upstream/ does no I/O
 * and knows nothing of health/: it gets this pair of pointers). */
#ifndef HEALTH_VIEW_H
#define HEALTH_VIEW_H

#include "health/streams.h"
#include "upstream/upstream-t.h"

struct ups_stream_view hc_index_view(struct hc_index *x);

#endif
