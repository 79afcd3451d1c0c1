/* The status page's static snapshot (page.h). */
#include "lb/admin/page.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SNAPSHOT_DEFAULT_MAX (512 * 1024)

struct out {
    char *p;
    size_t len, cap;
    bool oom;
    size_t limit; /* rows stop past this length */
    bool cut;
};

static void putn(struct out *o, const char *s, size_t n)
{
    if (o->oom)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->oom = true;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void put(struct out *o, const char *s) { putn(o, s, strlen(s)); }

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        putn(o, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void esc(struct out *o, const char *s)
{
    if (!s)
        return;
    const char *run = s;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: break;
        }
        if (rep) {
            putn(o, run, (size_t)(s - run));
            put(o, rep);
            run = s + 1;
        }
    }
    putn(o, run, (size_t)(s - run));
}

char *lb_html_escape(const char *s)
{
    struct out o = {0};
    put(&o, "");
    esc(&o, s);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    return o.p;
}

/* ---- JSON access -------------------------------------------------------- */

static json_object *get(json_object *j, const char *key)
{
    json_object *v = NULL;
    if (j && json_object_is_type(j, json_type_object) && json_object_object_get_ex(j, key, &v))
        return v;
    return NULL;
}

static const char *str(json_object *j, const char *key)
{
    json_object *v = get(j, key);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int64_t num(json_object *j, const char *key)
{
    json_object *v = get(j, key);
    return v ? json_object_get_int64(v) : 0;
}

static bool truth(json_object *j, const char *key)
{
    json_object *v = get(j, key);
    return v && json_object_get_boolean(v);
}

static size_t count(json_object *a)
{
    return a && json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

/* ---- units ------------------------------------------------------------------ */

static void put_bps(struct out *o, uint64_t v)
{
    if (v >= 1000000000)
        putf(o, "%.2f Gbit/s", (double)v / 1e9);
    else if (v >= 1000000)
        putf(o, "%.2f Mbit/s", (double)v / 1e6);
    else if (v >= 1000)
        putf(o, "%.1f kbit/s", (double)v / 1e3);
    else
        putf(o, "%" PRIu64 " bit/s", v);
}

static void put_bytes(struct out *o, uint64_t v)
{
    if (v >= 1ULL << 30)
        putf(o, "%.2f GiB", (double)v / (double)(1ULL << 30));
    else if (v >= 1ULL << 20)
        putf(o, "%.2f MiB", (double)v / (double)(1ULL << 20));
    else if (v >= 1024)
        putf(o, "%.1f KiB", (double)v / 1024.0);
    else
        putf(o, "%" PRIu64 " B", v);
}

static void put_age(struct out *o, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    int64_t s = ms / 1000;
    if (s < 60)
        putf(o, "%" PRId64 " s", s);
    else if (s < 3600)
        putf(o, "%" PRId64 " min %" PRId64 " s", s / 60, s % 60);
    else if (s < 86400)
        putf(o, "%" PRId64 " h %" PRId64 " min", s / 3600, (s / 60) % 60);
    else
        putf(o, "%" PRId64 " d %" PRId64 " h", s / 86400, (s / 3600) % 24);
}

/* ---- tables ------------------------------------------------------------------ */

static bool room(struct out *o)
{
    if (o->len > o->limit)
        o->cut = true;
    return !o->cut && !o->oom;
}

static void th(struct out *o, const char *const *names)
{
    put(o, "<thead><tr>");
    for (; *names; names++) {
        put(o, "<th>");
        put(o, *names);
        put(o, "</th>");
    }
    put(o, "</tr></thead><tbody>\n");
}

static void td(struct out *o, const char *s)
{
    put(o, "<td>");
    esc(o, s ? s : "-");
    put(o, "</td>");
}

static void td_u(struct out *o, int64_t v, const char *unit)
{
    putf(o, "<td>%" PRId64 "%s%s</td>", v, unit ? " " : "", unit ? unit : "");
}

static void nodes_section(struct out *o, const struct lb_page_state *st)
{
    static const char *const cols[] = {
        "Node", "Address", "Health", "Operator", "Weight (effective)", "Sessions", "In",
        "Out", "Stats: streams / clients", "Last probe", NULL};
    put(o, "<h2>Lines (pools) and nodes</h2>\n");
    json_object *pools = get(st->upstreams, "pools");
    if (!st->upstreams) {
        put(o, "<p>Not available.</p>\n");
        return;
    }
    for (size_t p = 0; p < count(pools) && room(o); p++) {
        json_object *pj = json_object_array_get_idx(pools, p);
        json_object *nodes = get(pj, "nodes");
        put(o, "<h3>Line ");
        esc(o, str(pj, "name"));
        putf(o, " (%zu nodes)</h3>\n<table class=\"snap-nodes\" data-pool=\"", count(nodes));
        esc(o, str(pj, "name"));
        put(o, "\">");
        th(o, cols);
        for (size_t i = 0; i < count(nodes) && room(o); i++) {
            json_object *n = json_object_array_get_idx(nodes, i);
            const char *name = str(n, "name");
            put(o, "<tr data-node=\"");
            esc(o, name);
            put(o, "\">");
            td(o, name);
            td(o, str(n, "address"));
            const char *state = str(n, "state");
            put(o, "<td>");
            put(o, state && strcmp(state, "up") == 0 ? "&#x2714; " : "&#x2716; ");
            esc(o, state);
            int64_t since = num(n, "state_since_ms");
            if (since && st->now_ms) {
                put(o, " for ");
                put_age(o, st->now_ms - since);
            } else {
                put(o, " since start");
            }
            put(o, "</td><td>");
            esc(o, str(n, "admin"));
            json_object *ov = get(n, "overridden");
            for (size_t k = 0; k < count(ov); k++)
                if (strcmp(json_object_get_string(json_object_array_get_idx(ov, k)), "state") == 0)
                    put(o, " (override)");
            put(o, "</td>");
            putf(o, "<td>%" PRId64 " (%" PRId64 ")", num(n, "weight"), num(n, "effective_weight"));
            for (size_t k = 0; k < count(ov); k++)
                if (strcmp(json_object_get_string(json_object_array_get_idx(ov, k)), "weight") ==
                    0)
                    putf(o, " override, config %" PRId64, num(n, "config_weight"));
            put(o, "</td>");
            td_u(o, num(n, "sessions"), NULL);
            put(o, "<td>");
            put_bps(o, (uint64_t)num(n, "bitrate_from_client_bps"));
            put(o, "</td><td>");
            put_bps(o, (uint64_t)num(n, "bitrate_to_client_bps"));
            putf(o, "</td><td>%" PRId64 " / %" PRId64 "</td>", num(n, "stats_streams"),
                 num(n, "stats_clients"));
            json_object *lp = get(n, "last_probe");
            if (lp) {
                put(o, "<td>");
                esc(o, str(lp, "result"));
                json_object *lat = get(lp, "latency_ms");
                putf(o, ", %.1f ms</td>", lat ? json_object_get_double(lat) : 0.0);
            } else {
                put(o, "<td>no active check</td>");
            }
            put(o, "</tr>\n");
        }
        put(o, "</tbody></table>\n");
    }
}

static void match_text(struct out *o, json_object *m)
{
    bool first = true;
    if (!m || !json_object_is_type(m, json_type_object) || json_object_object_length(m) == 0) {
        put(o, "everything");
        return;
    }
    json_object_object_foreach(m, key, val)
    {
        if (!first)
            put(o, ", ");
        first = false;
        esc(o, key);
        put(o, "=");
        esc(o, json_object_is_type(val, json_type_string)
                   ? json_object_get_string(val)
                   : json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN));
    }
}

static void routes_section(struct out *o, const struct lb_page_state *st)
{
    static const char *const cols[] = {"Route", "Match", "Policy", "Line (pool)", "Overridden",
                                       NULL};
    put(o, "<h2>Routes</h2>\n");
    if (!st->routes) {
        put(o, "<p>Not available.</p>\n");
        return;
    }
    json_object *routes = get(st->routes, "routes");
    put(o, "<table class=\"snap-routes\">");
    th(o, cols);
    for (size_t i = 0; i < count(routes) && room(o); i++) {
        json_object *r = json_object_array_get_idx(routes, i);
        put(o, "<tr>");
        td(o, str(r, "name"));
        put(o, "<td>");
        match_text(o, get(r, "match"));
        put(o, "</td>");
        td(o, str(r, "policy"));
        td(o, str(r, "pool"));
        if (truth(r, "overridden")) {
            json_object *cfg = get(r, "config");
            put(o, "<td>yes (config: ");
            esc(o, str(cfg, "pool"));
            put(o, ", ");
            esc(o, str(cfg, "policy"));
            put(o, ")</td>");
        } else {
            put(o, "<td>no</td>");
        }
        put(o, "</tr>\n");
    }
    put(o, "</tbody></table>\n");
}

static void streams_section(struct out *o, const struct lb_page_state *st)
{
    static const char *const cols[] = {"App/stream", "Line/node", "Publishers here",
                                       "Players here", "Told by", NULL};
    put(o, "<h2>Live streams</h2>\n");
    if (!st->streams) {
        put(o, "<p>Not available.</p>\n");
        return;
    }
    json_object *streams = get(st->streams, "streams");
    if (count(streams) == 0) {
        put(o, "<p>No live stream.</p>\n");
        return;
    }
    put(o, "<table class=\"snap-streams\">");
    th(o, cols);
    for (size_t i = 0; i < count(streams) && room(o); i++) {
        json_object *s = json_object_array_get_idx(streams, i);
        put(o, "<tr><td>");
        esc(o, str(s, "app"));
        put(o, "/");
        esc(o, str(s, "stream"));
        put(o, "</td><td>");
        esc(o, str(s, "pool"));
        put(o, "/");
        esc(o, str(s, "node"));
        put(o, "</td>");
        td_u(o, num(s, "publishers_here"), NULL);
        td_u(o, num(s, "players_here"), NULL);
        put(o, "<td>");
        json_object *src = get(s, "sources");
        for (size_t k = 0; k < count(src); k++) {
            if (k)
                put(o, ", ");
            esc(o, json_object_get_string(json_object_array_get_idx(src, k)));
        }
        put(o, "</td></tr>\n");
    }
    put(o, "</tbody></table>\n");
}

static void sessions_section(struct out *o, const struct lb_page_state *st)
{
    static const char *const cols[] = {"Client", "Country", "Role", "App/stream", "Line/node",
                                       "Age", "From client", "To client", NULL};
    put(o, "<h2>Live sessions</h2>\n");
    if (!st->sessions) {
        put(o, "<p>Not available.</p>\n");
        return;
    }
    json_object *ss = get(st->sessions, "sessions");
    putf(o, "<p>%zu shown of %" PRId64 " (oldest first).</p>\n", count(ss),
         num(st->sessions, "total"));
    if (count(ss) == 0)
        return;
    put(o, "<table class=\"snap-sessions\">");
    th(o, cols);
    for (size_t i = 0; i < count(ss) && room(o); i++) {
        json_object *s = json_object_array_get_idx(ss, i);
        put(o, "<tr>");
        td(o, str(s, "client"));
        td(o, str(s, "country"));
        td(o, str(s, "role"));
        put(o, "<td>");
        esc(o, str(s, "app") ? str(s, "app") : "-");
        put(o, "/");
        esc(o, str(s, "stream") ? str(s, "stream") : "-");
        put(o, "</td><td>");
        esc(o, str(s, "pool") ? str(s, "pool") : "-");
        put(o, "/");
        esc(o, str(s, "node") ? str(s, "node") : "-");
        put(o, "</td><td>");
        put_age(o, num(s, "age_ms"));
        put(o, "</td><td>");
        put_bytes(o, (uint64_t)num(s, "bytes_from_client"));
        put(o, "</td><td>");
        put_bytes(o, (uint64_t)num(s, "bytes_to_client"));
        put(o, "</td></tr>\n");
    }
    put(o, "</tbody></table>\n");
}

static void process_section(struct out *o, const struct lb_page_state *st)
{
    put(o, "<h2>Process</h2>\n");
    json_object *p = st->process;
    if (!p) {
        put(o, "<p>Not available.</p>\n");
        return;
    }
    put(o, "<table class=\"snap-process\"><tbody>\n<tr><th>Version</th>");
    td(o, str(p, "version"));
    put(o, "</tr>\n<tr><th>Uptime</th><td>");
    put_age(o, num(p, "uptime_ms"));
    put(o, "</td></tr>\n<tr><th>Config</th><td>");
    esc(o, str(p, "config_path"));
    put(o, ", hash ");
    esc(o, str(p, "config_hash"));
    putf(o, ", generation %" PRId64 "</td></tr>\n", num(p, "generation"));
    json_object *rl = get(p, "reload");
    put(o, "<tr><th>Last reload</th><td>");
    json_object *last = get(rl, "last");
    if (!last) {
        put(o, "none yet");
    } else {
        put(o, truth(last, "ok") ? "&#x2714; ok" : "&#x2716; refused: ");
        esc(o, str(last, "error"));
        if (st->now_ms) {
            put(o, ", ");
            put_age(o, st->now_ms - num(last, "time_ms"));
            put(o, " ago");
        }
    }
    putf(o, " (%" PRId64 " ok, %" PRId64 " refused)</td></tr>\n", num(rl, "ok"),
         num(rl, "failed"));
    json_object *d = get(p, "descriptors");
    putf(o,
         "<tr><th>Descriptors</th><td>%" PRId64 " open of %" PRId64 " (limit); room for %" PRId64
         " sessions, %" PRId64 " allowed now</td></tr>\n",
         num(d, "open"), num(d, "limit"), num(d, "session_capacity"), num(d, "max_sessions"));
    put(o, "</tbody></table>\n");
}

static void events_section(struct out *o, const struct lb_page_state *st)
{
    static const char *const cols[] = {"Age", "Kind", "Line/node", "What", NULL};
    put(o, "<h2>Recent events</h2>\n");
    json_object *ev = get(st->events, "events");
    if (count(ev) == 0) {
        put(o, "<p>None.</p>\n");
        return;
    }
    put(o, "<table class=\"snap-events\">");
    th(o, cols);
    /* newest first */
    for (size_t i = count(ev); i-- > 0 && room(o);) {
        json_object *e = json_object_array_get_idx(ev, i);
        put(o, "<tr><td>");
        put_age(o, st->now_ms - num(e, "time_ms"));
        put(o, " ago</td>");
        td(o, str(e, "kind"));
        put(o, "<td>");
        esc(o, str(e, "pool") ? str(e, "pool") : "-");
        put(o, "/");
        esc(o, str(e, "node") ? str(e, "node") : "-");
        put(o, "</td>");
        td(o, str(e, "text"));
        put(o, "</tr>\n");
    }
    put(o, "</tbody></table>\n");
}

char *lb_page_render(const char *tmpl, size_t tmpl_len, const struct lb_page_state *st,
                     size_t max_snapshot, size_t *len)
{
    struct out o = {0};
    const char *mark = NULL;
    size_t ml = strlen(LB_PAGE_MARKER);
    for (size_t i = 0; i + ml <= tmpl_len && !mark; i++)
        if (memcmp(tmpl + i, LB_PAGE_MARKER, ml) == 0)
            mark = tmpl + i;
    size_t head = mark ? (size_t)(mark - tmpl) : tmpl_len;
    putn(&o, tmpl, head);
    o.limit = o.len + (max_snapshot ? max_snapshot : SNAPSHOT_DEFAULT_MAX);
    if (!st) {
        put(&o, "<section id=\"snapshot\" data-state=\"no-token\"><p class=\"need-token\">"
                "An admin token is needed to see the state: enter it above (JavaScript), or "
                "send it as <code>Authorization: Bearer TOKEN</code>.</p></section>");
    } else {
        put(&o, "<section id=\"snapshot\" data-state=\"filled\">\n");
        process_section(&o, st);
        nodes_section(&o, st);
        routes_section(&o, st);
        streams_section(&o, st);
        sessions_section(&o, st);
        events_section(&o, st);
        if (o.cut)
            put(&o, "<p class=\"cut\">The snapshot is cut short here (size bound); the JSON API "
                    "has everything.</p>\n");
        put(&o, "</section>");
    }
    if (mark)
        putn(&o, mark + ml, tmpl_len - head - ml);
    if (o.oom) {
        free(o.p);
        return NULL;
    }
    *len = o.len;
    return o.p;
}
