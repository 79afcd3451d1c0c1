/* Pass two of config loading: walk libyaml's node tree against a schema
 * table, writing typed values into structs and reporting every problem with
 * its file:line:col and dotted path. */
#include "conf/conf-internal.h"
#include "conf/conf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT(obj, off, type) ((type *)((char *)(obj) + (off)))

struct conf_mark conf__mark(const yaml_node_t *n)
{
    struct conf_mark m = {0, 0};
    if (n) {
        m.line = (unsigned)n->start_mark.line + 1;
        m.col = (unsigned)n->start_mark.column + 1;
    }
    return m;
}

static void add_error(struct conf_errors *errs, char *msg)
{
    if (errs->n < CONF_MAX_ERRORS)
        errs->msg[errs->n++] = msg;
    else {
        errs->dropped++;
        free(msg);
    }
}

static void verror(struct conf_ctx *ctx, struct conf_mark m, const char *path, const char *fmt,
                   va_list ap)
{
    char body[768];
    char *msg;

    vsnprintf(body, sizeof(body), fmt, ap);
    if (asprintf(&msg, "%s:%u:%u: %s%s%s", ctx->file, m.line ? m.line : 1, m.col ? m.col : 1,
                 path && *path ? path : "", path && *path ? ": " : "", body) < 0)
        return;
    add_error(ctx->errs, msg);
}

void conf__error(struct conf_ctx *ctx, struct conf_mark m, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(ctx, m, path, fmt, ap);
    va_end(ap);
}

void conf__error_here(struct conf_ctx *ctx, struct conf_mark m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(ctx, m, ctx->path, fmt, ap);
    va_end(ap);
}

/* Path segments: ".key" (or "key" at the root), "[i]". */
static size_t path_push_key(struct conf_ctx *ctx, const char *key)
{
    size_t old = ctx->path_len;
    int n = snprintf(ctx->path + old, sizeof(ctx->path) - old, "%s%s", old ? "." : "", key);
    if (n > 0)
        ctx->path_len = old + (size_t)n < sizeof(ctx->path) ? old + (size_t)n
                                                            : sizeof(ctx->path) - 1;
    return old;
}

static size_t path_push_index(struct conf_ctx *ctx, size_t i)
{
    size_t old = ctx->path_len;
    int n = snprintf(ctx->path + old, sizeof(ctx->path) - old, "[%zu]", i);
    if (n > 0)
        ctx->path_len = old + (size_t)n < sizeof(ctx->path) ? old + (size_t)n
                                                            : sizeof(ctx->path) - 1;
    return old;
}

static void path_pop(struct conf_ctx *ctx, size_t old)
{
    ctx->path_len = old;
    ctx->path[old] = '\0';
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

/* A plain, empty scalar: "key:" with no value. */
static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0;
}

static const char *scalar(struct conf_ctx *ctx, yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE) {
        conf__error_here(ctx, conf__mark(n), "must be a single value (got %s)", node_kind(n));
        return NULL;
    }
    if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length) {
        conf__error_here(ctx, conf__mark(n), "must not contain NUL bytes");
        return NULL;
    }
    return (const char *)n->data.scalar.value;
}

static void enum_list(const struct conf_enum_val *e, bool supported_only, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (; e->name; e++) {
        if (supported_only && e->unsupported)
            continue;
        int n = snprintf(buf + used, len - used, "%s%s", used ? ", " : "", e->name);
        if (n < 0 || (size_t)n >= len - used)
            break;
        used += (size_t)n;
    }
}

static void check_range(struct conf_ctx *ctx, yaml_node_t *n, const struct conf_field *f,
                        int64_t v, int64_t *dst, const char *text)
{
    if (v < f->min || v > f->max) {
        if (f->kind == CK_INT || f->kind == CK_WORKERS)
            conf__error_here(ctx, conf__mark(n), "must be %lld..%lld (got %s)",
                             (long long)f->min, (long long)f->max, text);
        else
            conf__error_here(ctx, conf__mark(n), "out of range (got %s)", text);
        return;
    }
    *dst = v;
}

static void walk_seq(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n, void *obj);
static void walk_named_map(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n,
                           void *obj);

/* A mapping of strings to strings (route match args): keys non-empty,
 * unique and free of '=', '&' and '?'; values any scalar but a bare null;
 * both at most CONF_MAX_ARG_LEN bytes; at most max_count pairs. */
static void walk_strmap(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n,
                        void *obj)
{
    if (n->type != YAML_MAPPING_NODE) {
        conf__error_here(ctx, conf__mark(n), "must be a mapping of names to values (got %s)",
                         node_kind(n));
        return;
    }
    yaml_node_pair_t *start = n->data.mapping.pairs.start;
    size_t count = (size_t)(n->data.mapping.pairs.top - start);
    if (count == 0 || (f->max_count && count > f->max_count)) {
        conf__error_here(ctx, conf__mark(n), "must give 1..%zu names (got %zu)", f->max_count,
                         count);
        return;
    }
    char **kv = calloc(2 * count, sizeof(char *));
    if (!kv) {
        conf__error_here(ctx, conf__mark(n), "out of memory");
        return;
    }
    *AT(obj, f->off, char **) = kv;
    *AT(obj, f->count_off, size_t) = count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *k = yaml_document_get_node(ctx->doc, start[i].key);
        yaml_node_t *v = yaml_document_get_node(ctx->doc, start[i].value);
        const char *key = scalar(ctx, k);
        if (!key)
            continue;
        size_t old = path_push_key(ctx, key);
        const char *val = NULL;
        if (!*key || strcspn(key, "=&?") != strlen(key))
            conf__error_here(ctx, conf__mark(k), "a name must be non-empty, without '=', '&' or '?'");
        else if (strlen(key) > CONF_MAX_ARG_LEN)
            conf__error_here(ctx, conf__mark(k), "a name is at most %d bytes", CONF_MAX_ARG_LEN);
        else if (is_null(v))
            conf__error_here(ctx, conf__mark(v), "needs a value (\"\" for an empty one)");
        else if ((val = scalar(ctx, v)) && strlen(val) > CONF_MAX_ARG_LEN)
            conf__error_here(ctx, conf__mark(v), "a value is at most %d bytes", CONF_MAX_ARG_LEN);
        else if (val) {
            for (size_t j = 0; j < i; j++)
                if (kv[2 * j] && strcmp(kv[2 * j], key) == 0) {
                    conf__error_here(ctx, conf__mark(k), "duplicate name");
                    val = NULL;
                    break;
                }
            if (val) {
                kv[2 * i] = strdup(key);
                kv[2 * i + 1] = strdup(val);
                if (!kv[2 * i] || !kv[2 * i + 1])
                    conf__error_here(ctx, conf__mark(k), "out of memory");
            }
        }
        path_pop(ctx, old);
    }
}

static void walk_value(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n, void *obj)
{
    const char *s, *why;
    int64_t v;
    char buf[256];

    if (f->flags & CF_MARK)
        *AT(obj, f->mark_off, struct conf_mark) = conf__mark(n);

    switch (f->kind) {
    case CK_STR:
        if (!(s = scalar(ctx, n)))
            return;
        if (!*s) {
            conf__error_here(ctx, conf__mark(n), "must not be empty");
            return;
        }
        free(*AT(obj, f->off, char *));
        *AT(obj, f->off, char *) = strdup(s);
        return;
    case CK_INT:
    case CK_WORKERS:
        if (!(s = scalar(ctx, n)))
            return;
        if (f->kind == CK_WORKERS && strcmp(s, "auto") == 0) {
            *AT(obj, f->off, int64_t) = 0;
            return;
        }
        if (conf_parse_int(s, &v, &why) < 0) {
            conf__error_here(ctx, conf__mark(n), "%s%s (got \"%s\")", why,
                             f->kind == CK_WORKERS ? " or auto" : "", s);
            return;
        }
        check_range(ctx, n, f, v, AT(obj, f->off, int64_t), s);
        return;
    case CK_DURATION:
    case CK_SIZE:
        if (!(s = scalar(ctx, n)))
            return;
        if ((f->kind == CK_DURATION ? conf_parse_duration_ms(s, &v, &why)
                                    : conf_parse_size(s, &v, &why)) < 0) {
            conf__error_here(ctx, conf__mark(n), "%s (got \"%s\")", why, s);
            return;
        }
        if (v < f->min || v > f->max) {
            if (f->kind == CK_DURATION)
                conf__error_here(ctx, conf__mark(n), "must be %lldms..%lldms (got %s)",
                                 (long long)f->min, (long long)f->max, s);
            else
                conf__error_here(ctx, conf__mark(n), "must be %lld..%lld bytes (got %s)",
                                 (long long)f->min, (long long)f->max, s);
            return;
        }
        *AT(obj, f->off, int64_t) = v;
        return;
    case CK_BOOL:
        if (!(s = scalar(ctx, n)))
            return;
        if (conf_parse_bool(s, AT(obj, f->off, bool), &why) < 0)
            conf__error_here(ctx, conf__mark(n), "%s (got \"%s\")", why, s);
        return;
    case CK_ENUM:
        if (!(s = scalar(ctx, n)))
            return;
        for (const struct conf_enum_val *e = f->enums; e->name; e++) {
            if (strcmp(e->name, s) != 0)
                continue;
            if (e->unsupported) {
                enum_list(f->enums, true, buf, sizeof(buf));
                conf__error_here(ctx, conf__mark(n),
                                 "\"%s\" is not available in this build yet: %s (available: %s)",
                                 s, e->unsupported, buf);
                return;
            }
            *AT(obj, f->off, int) = e->value;
            return;
        }
        enum_list(f->enums, false, buf, sizeof(buf));
        conf__error_here(ctx, conf__mark(n), "must be one of: %s (got \"%s\")", buf, s);
        return;
    case CK_ADDR: {
        struct conf_addr *a = AT(obj, f->off, struct conf_addr);
        if (!(s = scalar(ctx, n)))
            return;
        free(a->text);
        a->text = NULL;
        if (conf_parse_addr(s, ctx->resolve, (f->flags & CF_PASSIVE) != 0, a, buf,
                            sizeof(buf)) < 0)
            conf__error_here(ctx, conf__mark(n), "%s", buf);
        return;
    }
    case CK_STRUCT:
        if (is_null(n) && (f->flags & CF_NULL_PRESENT)) {
            const struct conf_type *t = f->sub;
            void *sub = AT(obj, f->off, char);
            if (t->mark_off != CONF_NO_OFF)
                *AT(sub, t->mark_off, struct conf_mark) = conf__mark(n);
            if (t->present_off != CONF_NO_OFF)
                *AT(sub, t->present_off, bool) = true;
            for (const struct conf_field *sf = t->fields; sf->key; sf++)
                if (sf->flags & CF_REQUIRED) {
                    size_t old = path_push_key(ctx, sf->key);
                    conf__error_here(ctx, conf__mark(n), "is required");
                    path_pop(ctx, old);
                }
            return;
        }
        if (is_null(n))
            return; /* "key:" alone = all defaults */
        conf__walk_struct(ctx, f->sub, n, AT(obj, f->off, char));
        return;
    case CK_SEQ:
        walk_seq(ctx, f, n, obj);
        return;
    case CK_NAMED_MAP:
        walk_named_map(ctx, f, n, obj);
        return;
    case CK_UNSUPPORTED:
        conf__error_here(ctx, conf__mark(n), "not available in this build yet: %s", f->why);
        return;
    case CK_DOUBLE: {
        char *end;
        if (!(s = scalar(ctx, n)))
            return;
        double d = strtod(s, &end);
        if (!*s || *end || d != d) {
            conf__error_here(ctx, conf__mark(n), "must be a number (got \"%s\")", s);
            return;
        }
        if (d < (double)f->min || d > (double)f->max) {
            conf__error_here(ctx, conf__mark(n), "must be %lld..%lld (got %s)",
                             (long long)f->min, (long long)f->max, s);
            return;
        }
        *AT(obj, f->off, double) = d;
        return;
    }
    case CK_STRLIST: {
        if (n->type != YAML_SEQUENCE_NODE) {
            conf__error_here(ctx, conf__mark(n), "must be a list (got %s)", node_kind(n));
            return;
        }
        size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count == 0 || (f->max_count && count > f->max_count)) {
            conf__error_here(ctx, conf__mark(n), "must list 1..%zu entries (got %zu)",
                             f->max_count, count);
            return;
        }
        char **list = calloc(count, sizeof(char *));
        if (!list)
            return;
        *AT(obj, f->off, char **) = list;
        *AT(obj, f->count_off, size_t) = count;
        for (size_t i = 0; i < count; i++) {
            yaml_node_t *item = yaml_document_get_node(ctx->doc, n->data.sequence.items.start[i]);
            size_t old = path_push_index(ctx, i);
            const char *txt = scalar(ctx, item);
            const char *bad = txt && f->check ? f->check(txt) : NULL;
            if (txt && bad)
                conf__error_here(ctx, conf__mark(item), "%s (got \"%s\")", bad, txt);
            else if (txt)
                list[i] = strdup(txt);
            path_pop(ctx, old);
        }
        return;
    }
    case CK_STRMAP:
        walk_strmap(ctx, f, n, obj);
        return;
    }
}

static void *new_elements(const struct conf_type *t, size_t n)
{
    char *arr = calloc(n ? n : 1, t->size);
    if (arr && t->init)
        for (size_t i = 0; i < n; i++)
            t->init(arr + i * t->size);
    return arr;
}

static bool check_count(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n,
                        size_t count)
{
    if (count == 0 && (f->flags & CF_NONEMPTY)) {
        conf__error_here(ctx, conf__mark(n), "must have at least one %s", f->sub->what);
        return false;
    }
    if (f->max_count && count > f->max_count) {
        conf__error_here(ctx, conf__mark(n), "at most %zu %ss (got %zu)", f->max_count,
                         f->sub->what, count);
        return false;
    }
    return true;
}

static void walk_seq(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n, void *obj)
{
    if (n->type != YAML_SEQUENCE_NODE) {
        conf__error_here(ctx, conf__mark(n), "must be a list of %ss (got %s)", f->sub->what,
                         node_kind(n));
        return;
    }
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (!check_count(ctx, f, n, count) || count == 0)
        return;
    char *arr = new_elements(f->sub, count);
    if (!arr) {
        conf__error_here(ctx, conf__mark(n), "out of memory");
        return;
    }
    *AT(obj, f->off, void *) = arr;
    *AT(obj, f->count_off, size_t) = count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ctx->doc, n->data.sequence.items.start[i]);
        size_t old = path_push_index(ctx, i);
        conf__walk_struct(ctx, f->sub, item, arr + i * f->sub->size);
        path_pop(ctx, old);
    }
}

static void walk_named_map(struct conf_ctx *ctx, const struct conf_field *f, yaml_node_t *n,
                           void *obj)
{
    if (n->type != YAML_MAPPING_NODE) {
        conf__error_here(ctx, conf__mark(n), "must be a mapping of %s names to %ss (got %s)",
                         f->sub->what, f->sub->what, node_kind(n));
        return;
    }
    yaml_node_pair_t *start = n->data.mapping.pairs.start;
    size_t count = (size_t)(n->data.mapping.pairs.top - start);
    if (!check_count(ctx, f, n, count) || count == 0)
        return;
    char *arr = new_elements(f->sub, count);
    if (!arr) {
        conf__error_here(ctx, conf__mark(n), "out of memory");
        return;
    }
    *AT(obj, f->off, void *) = arr;
    *AT(obj, f->count_off, size_t) = count;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *k = yaml_document_get_node(ctx->doc, start[i].key);
        yaml_node_t *v = yaml_document_get_node(ctx->doc, start[i].value);
        char *elem = arr + i * f->sub->size;
        const char *name = scalar(ctx, k);
        if (!name)
            continue;
        if (!*name) {
            conf__error_here(ctx, conf__mark(k), "%s name must not be empty", f->sub->what);
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            yaml_node_t *kj = yaml_document_get_node(ctx->doc, start[j].key);
            if (kj->type == YAML_SCALAR_NODE && strcmp((const char *)kj->data.scalar.value, name) == 0) {
                size_t old = path_push_key(ctx, name);
                conf__error_here(ctx, conf__mark(k), "duplicate %s name (first at line %u)",
                                 f->sub->what, conf__mark(kj).line);
                path_pop(ctx, old);
                break;
            }
        }
        *AT(elem, f->sub->name_off, char *) = strdup(name);
        size_t old = path_push_key(ctx, name);
        conf__walk_struct(ctx, f->sub, v, elem);
        path_pop(ctx, old);
    }
}

void conf__walk_struct(struct conf_ctx *ctx, const struct conf_type *t, yaml_node_t *node,
                       void *obj)
{
    if (t->mark_off != CONF_NO_OFF)
        *AT(obj, t->mark_off, struct conf_mark) = conf__mark(node);
    if (t->present_off != CONF_NO_OFF)
        *AT(obj, t->present_off, bool) = true;
    if (node->type != YAML_MAPPING_NODE) {
        conf__error_here(ctx, conf__mark(node), "must be a mapping (got %s)", node_kind(node));
        return;
    }

    yaml_node_pair_t *start = node->data.mapping.pairs.start;
    size_t count = (size_t)(node->data.mapping.pairs.top - start);
    unsigned seen_line[64] = {0};
    size_t nfields = 0;
    while (t->fields[nfields].key)
        nfields++;

    for (size_t i = 0; i < count; i++) {
        yaml_node_t *k = yaml_document_get_node(ctx->doc, start[i].key);
        yaml_node_t *v = yaml_document_get_node(ctx->doc, start[i].value);
        const char *key = scalar(ctx, k);
        if (!key)
            continue;
        size_t fi = 0;
        while (fi < nfields && strcmp(t->fields[fi].key, key) != 0)
            fi++;
        size_t old = path_push_key(ctx, key);
        if (fi == nfields) {
            char keys[400];
            size_t used = 0;
            keys[0] = '\0';
            for (size_t j = 0; j < nfields; j++) {
                int w = snprintf(keys + used, sizeof(keys) - used, "%s%s", j ? ", " : "",
                                 t->fields[j].key);
                if (w < 0 || (size_t)w >= sizeof(keys) - used)
                    break;
                used += (size_t)w;
            }
            conf__error_here(ctx, conf__mark(k), "unknown key (expected one of: %s)", keys);
        } else if (fi < 64 && seen_line[fi]) {
            conf__error_here(ctx, conf__mark(k), "duplicate key (first at line %u)",
                             seen_line[fi]);
        } else {
            if (fi < 64)
                seen_line[fi] = conf__mark(k).line;
            walk_value(ctx, &t->fields[fi], v, obj);
        }
        path_pop(ctx, old);
    }

    for (size_t fi = 0; fi < nfields && fi < 64; fi++) {
        if ((t->fields[fi].flags & CF_REQUIRED) && !seen_line[fi]) {
            size_t old = path_push_key(ctx, t->fields[fi].key);
            conf__error_here(ctx, conf__mark(node), "is required");
            path_pop(ctx, old);
        }
    }
}

void conf__free_struct(const struct conf_type *t, void *obj)
{
    if (t->name_off != CONF_NO_OFF)
        free(*AT(obj, t->name_off, char *));
    for (const struct conf_field *f = t->fields; f->key; f++) {
        switch (f->kind) {
        case CK_STR:
            free(*AT(obj, f->off, char *));
            break;
        case CK_ADDR:
            free(AT(obj, f->off, struct conf_addr)->text);
            break;
        case CK_STRUCT:
            conf__free_struct(f->sub, AT(obj, f->off, char));
            break;
        case CK_STRLIST: {
            char **list = *AT(obj, f->off, char **);
            size_t count = *AT(obj, f->count_off, size_t);
            for (size_t i = 0; list && i < count; i++)
                free(list[i]);
            free(list);
            break;
        }
        case CK_STRMAP: {
            char **kv = *AT(obj, f->off, char **);
            size_t count = *AT(obj, f->count_off, size_t);
            for (size_t i = 0; kv && i < 2 * count; i++)
                free(kv[i]);
            free(kv);
            break;
        }
        case CK_SEQ:
        case CK_NAMED_MAP: {
            char *arr = *AT(obj, f->off, char *);
            size_t count = *AT(obj, f->count_off, size_t);
            for (size_t i = 0; arr && i < count; i++)
                conf__free_struct(f->sub, arr + i * f->sub->size);
            free(arr);
            break;
        }
        default:
            break;
        }
    }
}
