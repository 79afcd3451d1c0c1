/* AMF0/AMF3 decoding (bounded) and encoding. */
#include "lb/rtmp/amf.h"
#include "lb/rtmp/bytes.h"

#include <string.h>

#define AMF3_STRING_REFS 64

struct cur {
    const uint8_t *p;
    size_t left;
    const struct amf_limits *lim;
    struct amf_doc *doc;
    const uint8_t *strs[AMF3_STRING_REFS]; /* AMF3 string reference table */
    uint32_t str_lens[AMF3_STRING_REFS];
    size_t n_strs;
};

static int err(struct cur *c, const char *why)
{
    if (!c->doc->error)
        c->doc->error = why;
    return -1;
}

/* Every out-parameter below is written on every path (NULL/0 on failure), so
 * no caller ever reads an unset pointer, whatever the optimiser concludes. */
static int take(struct cur *c, size_t n, const uint8_t **out)
{
    if (c->left < n) {
        *out = NULL;
        return err(c, "truncated AMF value");
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return 0;
}

static int32_t new_value(struct cur *c, uint8_t type)
{
    if (c->doc->n >= c->doc->cap || c->doc->n >= c->lim->max_values)
        return err(c, "too many AMF values");
    int32_t i = (int32_t)c->doc->n++;
    struct amf_value *v = &c->doc->v[i];
    memset(v, 0, sizeof(*v));
    v->type = type;
    v->first = v->next = -1;
    return i;
}

/* Appends child to parent's list; tail tracks the last child. */
static void link_child(struct cur *c, int32_t parent, int32_t *tail, int32_t child)
{
    struct amf_value *pv = &c->doc->v[parent];
    if (*tail < 0)
        pv->first = child;
    else
        c->doc->v[*tail].next = child;
    *tail = child;
    pv->len++;
}

static int amf0_value(struct cur *c, uint32_t depth, int32_t *out);
static int amf3_value(struct cur *c, uint32_t depth, int32_t *out);

static int amf0_str(struct cur *c, uint32_t len_bytes, const uint8_t **s, uint32_t *len)
{
    const uint8_t *b;
    *s = NULL;
    *len = 0;
    if (take(c, len_bytes, &b) < 0)
        return -1;
    *len = len_bytes == 2 ? (uint32_t)b[0] << 8 | b[1]
                          : (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    if (*len > c->lim->max_string)
        return err(c, "AMF string longer than the limit");
    return take(c, *len, s);
}

/* Properties until the empty key + 0x09 end marker. */
static int amf0_props(struct cur *c, uint32_t depth, int32_t parent)
{
    int32_t tail = -1;
    for (;;) {
        const uint8_t *k;
        uint32_t klen;
        if (amf0_str(c, 2, &k, &klen) < 0)
            return -1;
        if (klen == 0) {
            const uint8_t *m;
            if (take(c, 1, &m) < 0)
                return -1;
            if (*m != 0x09)
                return err(c, "AMF object property with an empty name");
            return 0;
        }
        int32_t child;
        if (amf0_value(c, depth + 1, &child) < 0)
            return -1;
        c->doc->v[child].key = (const char *)k;
        c->doc->v[child].key_len = klen;
        link_child(c, parent, &tail, child);
    }
}

static int amf0_value(struct cur *c, uint32_t depth, int32_t *out)
{
    const uint8_t *b;
    if (depth > c->lim->max_depth)
        return err(c, "AMF nesting deeper than the limit");
    if (take(c, 1, &b) < 0)
        return -1;
    uint8_t marker = *b;
    int32_t i;
    switch (marker) {
    case 0x00: /* number */
        if ((i = new_value(c, AMF_NUMBER)) < 0 || take(c, 8, &b) < 0)
            return -1;
        c->doc->v[i].num = rtmp_get_be_double(b);
        break;
    case 0x01:
        if ((i = new_value(c, AMF_BOOLEAN)) < 0 || take(c, 1, &b) < 0)
            return -1;
        c->doc->v[i].num = *b != 0;
        break;
    case 0x02: /* string */
    case 0x0C: /* long string */
    case 0x0F: { /* XML document: a long string */
        const uint8_t *s;
        uint32_t len;
        if ((i = new_value(c, AMF_STRING)) < 0 || amf0_str(c, marker == 0x02 ? 2 : 4, &s, &len) < 0)
            return -1;
        c->doc->v[i].str = (const char *)s;
        c->doc->v[i].len = len;
        break;
    }
    case 0x03: /* object */
        if ((i = new_value(c, AMF_OBJECT)) < 0 || amf0_props(c, depth, i) < 0)
            return -1;
        break;
    case 0x10: { /* typed object: class name, then properties */
        const uint8_t *s;
        uint32_t len;
        if (amf0_str(c, 2, &s, &len) < 0 || (i = new_value(c, AMF_OBJECT)) < 0 ||
            amf0_props(c, depth, i) < 0)
            return -1;
        break;
    }
    case 0x05:
        if ((i = new_value(c, AMF_NULL)) < 0)
            return -1;
        break;
    case 0x06:
    case 0x0D: /* unsupported: carries no value */
        if ((i = new_value(c, AMF_UNDEFINED)) < 0)
            return -1;
        break;
    case 0x08: /* ECMA array: a count (advisory), then properties */
        if ((i = new_value(c, AMF_ARRAY)) < 0 || take(c, 4, &b) < 0 || amf0_props(c, depth, i) < 0)
            return -1;
        break;
    case 0x0A: { /* strict array */
        if ((i = new_value(c, AMF_ARRAY)) < 0 || take(c, 4, &b) < 0)
            return -1;
        uint32_t count = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
        if (count > c->lim->max_values)
            return err(c, "AMF array longer than the limit");
        int32_t tail = -1;
        for (uint32_t k = 0; k < count; k++) {
            int32_t child;
            if (amf0_value(c, depth + 1, &child) < 0)
                return -1;
            link_child(c, i, &tail, child);
        }
        break;
    }
    case 0x0B: /* date: double + 2-byte zone */
        if ((i = new_value(c, AMF_DATE)) < 0 || take(c, 8, &b) < 0)
            return -1;
        c->doc->v[i].num = rtmp_get_be_double(b);
        if (take(c, 2, &b) < 0)
            return -1;
        break;
    case 0x11: /* switch to AMF3 for one value */
        return amf3_value(c, depth, out);
    case 0x07: /* reference */
        return err(c, "AMF0 references are not supported");
    case 0x09:
        return err(c, "unexpected AMF object end");
    default:
        return err(c, "unknown AMF0 type marker");
    }
    *out = i;
    return 0;
}

/* ---- AMF3 --------------------------------------------------------------- */

static int u29(struct cur *c, uint32_t *out)
{
    uint32_t v = 0;
    const uint8_t *b;
    *out = 0;
    for (int k = 0; k < 4; k++) {
        if (take(c, 1, &b) < 0)
            return -1;
        if (k == 3) {
            v = v << 8 | *b;
            break;
        }
        v = v << 7 | (*b & 0x7f);
        if (!(*b & 0x80))
            break;
    }
    *out = v;
    return 0;
}

static int amf3_string(struct cur *c, const uint8_t **s, uint32_t *len)
{
    uint32_t h;
    *s = NULL;
    *len = 0;
    if (u29(c, &h) < 0)
        return -1;
    if (!(h & 1)) { /* reference */
        uint32_t idx = h >> 1;
        if (idx >= c->n_strs)
            return err(c, "AMF3 string reference out of range");
        *s = c->strs[idx];
        *len = c->str_lens[idx];
        return 0;
    }
    *len = h >> 1;
    if (*len > c->lim->max_string)
        return err(c, "AMF string longer than the limit");
    if (take(c, *len, s) < 0)
        return -1;
    if (*len && c->n_strs < AMF3_STRING_REFS) {
        c->strs[c->n_strs] = *s;
        c->str_lens[c->n_strs++] = *len;
    }
    return 0;
}

/* Name/value pairs until the empty name: an array's associative part and an
 * object's dynamic members. */
static int amf3_named_members(struct cur *c, uint32_t depth, int32_t parent, int32_t *tail)
{
    for (;;) {
        const uint8_t *s;
        uint32_t len;
        int32_t child;
        if (amf3_string(c, &s, &len) < 0)
            return -1;
        if (len == 0)
            return 0;
        if (amf3_value(c, depth + 1, &child) < 0)
            return -1;
        c->doc->v[child].key = (const char *)s;
        c->doc->v[child].key_len = len;
        link_child(c, parent, tail, child);
    }
}

static int amf3_value(struct cur *c, uint32_t depth, int32_t *out)
{
    const uint8_t *b;
    uint32_t h, len;
    const uint8_t *s;
    int32_t i, tail = -1;

    if (depth > c->lim->max_depth)
        return err(c, "AMF nesting deeper than the limit");
    if (take(c, 1, &b) < 0)
        return -1;
    switch (*b) {
    case 0x00:
        if ((i = new_value(c, AMF_UNDEFINED)) < 0)
            return -1;
        break;
    case 0x01:
        if ((i = new_value(c, AMF_NULL)) < 0)
            return -1;
        break;
    case 0x02:
    case 0x03:
        if ((i = new_value(c, AMF_BOOLEAN)) < 0)
            return -1;
        c->doc->v[i].num = *b == 0x03;
        break;
    case 0x04:
        if ((i = new_value(c, AMF_INTEGER)) < 0 || u29(c, &h) < 0)
            return -1;
        c->doc->v[i].num = (h & 0x10000000) ? (double)((int32_t)h - 0x20000000) : (double)h;
        break;
    case 0x05:
        if ((i = new_value(c, AMF_NUMBER)) < 0 || take(c, 8, &b) < 0)
            return -1;
        c->doc->v[i].num = rtmp_get_be_double(b);
        break;
    case 0x06:
        if ((i = new_value(c, AMF_STRING)) < 0 || amf3_string(c, &s, &len) < 0)
            return -1;
        c->doc->v[i].str = (const char *)s;
        c->doc->v[i].len = len;
        break;
    case 0x07: /* XML doc, XML, byte array: length-prefixed bytes */
    case 0x0B:
    case 0x0C:
        if ((i = new_value(c, AMF_STRING)) < 0 || u29(c, &h) < 0)
            return -1;
        if (!(h & 1))
            return err(c, "AMF3 object references are not supported");
        if ((h >> 1) > c->lim->max_string)
            return err(c, "AMF string longer than the limit");
        if (take(c, h >> 1, &s) < 0)
            return -1;
        c->doc->v[i].str = (const char *)s;
        c->doc->v[i].len = h >> 1;
        break;
    case 0x08:
        if ((i = new_value(c, AMF_DATE)) < 0 || u29(c, &h) < 0)
            return -1;
        if (!(h & 1))
            return err(c, "AMF3 object references are not supported");
        if (take(c, 8, &b) < 0)
            return -1;
        c->doc->v[i].num = rtmp_get_be_double(b);
        break;
    case 0x09: { /* array: associative part, then dense part */
        if ((i = new_value(c, AMF_ARRAY)) < 0 || u29(c, &h) < 0)
            return -1;
        if (!(h & 1))
            return err(c, "AMF3 object references are not supported");
        uint32_t dense = h >> 1;
        if (dense > c->lim->max_values)
            return err(c, "AMF array longer than the limit");
        if (amf3_named_members(c, depth, i, &tail) < 0)
            return -1;
        for (uint32_t k = 0; k < dense; k++) {
            int32_t child;
            if (amf3_value(c, depth + 1, &child) < 0)
                return -1;
            link_child(c, i, &tail, child);
        }
        break;
    }
    case 0x0A: { /* object with inline traits */
        if ((i = new_value(c, AMF_OBJECT)) < 0 || u29(c, &h) < 0)
            return -1;
        if ((h & 0x7) != 0x3) {
            if (!(h & 1) || !(h & 2))
                return err(c, "AMF3 object and trait references are not supported");
            return err(c, "AMF3 externalizable objects are not supported");
        }
        bool dynamic = (h & 0x8) != 0;
        uint32_t sealed = h >> 4;
        if (sealed > 32)
            return err(c, "AMF3 object with too many sealed members");
        const uint8_t *names[32];
        uint32_t name_lens[32];
        if (amf3_string(c, &s, &len) < 0) /* class name */
            return -1;
        for (uint32_t k = 0; k < sealed; k++)
            if (amf3_string(c, &names[k], &name_lens[k]) < 0)
                return -1;
        for (uint32_t k = 0; k < sealed; k++) {
            int32_t child;
            if (amf3_value(c, depth + 1, &child) < 0)
                return -1;
            c->doc->v[child].key = (const char *)names[k];
            c->doc->v[child].key_len = name_lens[k];
            link_child(c, i, &tail, child);
        }
        if (dynamic && amf3_named_members(c, depth, i, &tail) < 0)
            return -1;
        break;
    }
    default:
        return err(c, "unknown AMF3 type marker");
    }
    *out = i;
    return 0;
}

int amf_decode_command(const uint8_t *p, size_t n, bool amf3_cmd, const struct amf_limits *lim,
                       struct amf_doc *doc)
{
    struct cur c;

    memset(&c, 0, sizeof(c));
    doc->n = 0;
    doc->n_top = 0;
    doc->error = NULL;
    c.p = p;
    c.left = n;
    c.lim = lim;
    c.doc = doc;
    if (amf3_cmd && c.left > 0 && c.p[0] == 0x00) { /* format selector of type 17 */
        c.p++;
        c.left--;
    }
    while (c.left > 0) {
        if (doc->n_top == sizeof(doc->top) / sizeof(doc->top[0]))
            return err(&c, "too many command arguments");
        int32_t v;
        if (amf0_value(&c, 0, &v) < 0)
            return -1;
        doc->top[doc->n_top++] = v;
    }
    return 0;
}

const struct amf_value *amf_top(const struct amf_doc *doc, size_t i)
{
    return i < doc->n_top ? &doc->v[doc->top[i]] : NULL;
}

const struct amf_value *amf_get(const struct amf_doc *doc, const struct amf_value *obj,
                                const char *key)
{
    size_t klen = strlen(key);
    if (!obj || (obj->type != AMF_OBJECT && obj->type != AMF_ARRAY))
        return NULL;
    for (int32_t i = obj->first; i >= 0; i = doc->v[i].next) {
        const struct amf_value *v = &doc->v[i];
        if (v->key && v->key_len == klen && memcmp(v->key, key, klen) == 0)
            return v;
    }
    return NULL;
}

bool amf_str_eq(const struct amf_value *v, const char *s)
{
    return v && v->type == AMF_STRING && v->len == strlen(s) && memcmp(v->str, s, v->len) == 0;
}

/* ---- encoders ----------------------------------------------------------- */

static uint8_t *put(uint8_t *p, const uint8_t *end, const void *b, size_t n)
{
    if (!p || (size_t)(end - p) < n)
        return NULL;
    memcpy(p, b, n);
    return p + n;
}

static void be_double_bytes(double v, uint8_t out[8])
{
    uint64_t u;
    memcpy(&u, &v, sizeof(u));
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)u;
        u >>= 8;
    }
}

uint8_t *amf0_put_number(uint8_t *p, const uint8_t *end, double v)
{
    uint8_t b[9] = {0x00};
    be_double_bytes(v, b + 1);
    return put(p, end, b, 9);
}

uint8_t *amf0_put_bool(uint8_t *p, const uint8_t *end, bool v)
{
    uint8_t b[2] = {0x01, v ? 1 : 0};
    return put(p, end, b, 2);
}

uint8_t *amf0_put_key(uint8_t *p, const uint8_t *end, const char *key)
{
    size_t n = strlen(key);
    uint8_t h[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    if (n > 0xffff)
        return NULL;
    return put(put(p, end, h, 2), end, key, n);
}

uint8_t *amf0_put_string(uint8_t *p, const uint8_t *end, const char *s)
{
    uint8_t m = 0x02;
    return amf0_put_key(put(p, end, &m, 1), end, s);
}

uint8_t *amf0_put_null(uint8_t *p, const uint8_t *end)
{
    uint8_t m = 0x05;
    return put(p, end, &m, 1);
}

uint8_t *amf0_put_object_start(uint8_t *p, const uint8_t *end)
{
    uint8_t m = 0x03;
    return put(p, end, &m, 1);
}

uint8_t *amf0_put_strict_array(uint8_t *p, const uint8_t *end, uint32_t count)
{
    uint8_t m[5] = {0x0A, (uint8_t)(count >> 24), (uint8_t)(count >> 16), (uint8_t)(count >> 8),
                    (uint8_t)count};
    return put(p, end, m, sizeof(m));
}

uint8_t *amf0_put_object_end(uint8_t *p, const uint8_t *end)
{
    static const uint8_t m[3] = {0, 0, 0x09};
    return put(p, end, m, 3);
}

uint8_t *amf3_put_u29(uint8_t *p, const uint8_t *end, uint32_t v)
{
    uint8_t b[4];
    size_t n;
    v &= 0x1fffffff;
    if (v < 0x80) {
        b[0] = (uint8_t)v;
        n = 1;
    } else if (v < 0x4000) {
        b[0] = (uint8_t)(v >> 7 | 0x80);
        b[1] = (uint8_t)(v & 0x7f);
        n = 2;
    } else if (v < 0x200000) {
        b[0] = (uint8_t)(v >> 14 | 0x80);
        b[1] = (uint8_t)((v >> 7 & 0x7f) | 0x80);
        b[2] = (uint8_t)(v & 0x7f);
        n = 3;
    } else {
        b[0] = (uint8_t)(v >> 22 | 0x80);
        b[1] = (uint8_t)((v >> 15 & 0x7f) | 0x80);
        b[2] = (uint8_t)((v >> 8 & 0x7f) | 0x80);
        b[3] = (uint8_t)v;
        n = 4;
    }
    return put(p, end, b, n);
}

uint8_t *amf3_put_string(uint8_t *p, const uint8_t *end, const char *s)
{
    size_t n = strlen(s);
    return put(amf3_put_u29(p, end, (uint32_t)(n << 1 | 1)), end, s, n);
}

uint8_t *amf3_put_integer(uint8_t *p, const uint8_t *end, int32_t v)
{
    uint8_t m = 0x04;
    return amf3_put_u29(put(p, end, &m, 1), end, (uint32_t)v & 0x1fffffff);
}

uint8_t *amf3_put_double(uint8_t *p, const uint8_t *end, double v)
{
    uint8_t b[9] = {0x05};
    be_double_bytes(v, b + 1);
    return put(p, end, b, 9);
}
