/* Config loader internals: the schema-table walker shared by conf.c. */
#ifndef CONF_CONF_INTERNAL_H
#define CONF_CONF_INTERNAL_H

#include <yaml.h>

#include "conf/conf-t.h"

enum conf_kind {
    CK_STR,         /* char *, non-empty */
    CK_INT,         /* int64_t in [min, max] */
    CK_WORKERS,     /* int64_t: "auto" = 0, else [min, max] */
    CK_DURATION,    /* int64_t milliseconds in [min, max] */
    CK_SIZE,        /* int64_t bytes in [min, max] */
    CK_BOOL,        /* bool */
    CK_ENUM,        /* int, from enums */
    CK_ADDR,        /* struct conf_addr */
    CK_STRUCT,      /* embedded struct of type sub */
    CK_SEQ,         /* array of sub: pointer at off, size_t count at count_off */
    CK_NAMED_MAP,   /* mapping name -> sub; name stored at sub->name_off */
    CK_UNSUPPORTED, /* in the contract, not in this build: error with why */
    CK_DOUBLE,      /* double in [min, max] */
    CK_STRLIST,     /* char ** at off, size_t count at count_off; validate each */
    CK_STRMAP,      /* mapping of strings to strings: char ** at off holding
                     * key, value, key, value...; pairs at count_off */
};

#define CF_REQUIRED 1u
#define CF_MARK 2u     /* store the value's mark at mark_off */
#define CF_NONEMPTY 4u /* sequences and maps: at least one entry */
#define CF_PASSIVE 8u  /* addresses: a listening address */
/* CK_STRUCT: "key:" alone turns the section on with its defaults (its
 * required keys are then missing). Without it, "key:" alone is ignored. */
#define CF_NULL_PRESENT 16u

struct conf_enum_val {
    const char *name;
    int value;
    const char *unsupported; /* non-NULL: known, but not in this build */
};

struct conf_type;

struct conf_field {
    const char *key;
    enum conf_kind kind;
    size_t off;
    unsigned flags;
    size_t mark_off;
    int64_t min, max;
    const struct conf_enum_val *enums;
    const struct conf_type *sub;
    size_t count_off;
    size_t max_count;
    const char *why; /* CK_UNSUPPORTED: what is missing */
    /* CK_STRLIST: checks one item; returns NULL or what is wrong with it */
    const char *(*check)(const char *item);
};

struct conf_type {
    const char *what; /* for messages: "listener", "node" ... */
    size_t size;
    size_t mark_off;    /* struct conf_mark of the element */
    size_t name_off;    /* CK_NAMED_MAP elements: char *name; SIZE_MAX: none */
    size_t present_off; /* bool set when the key is present; SIZE_MAX: none */
    void (*init)(void *obj);
    const struct conf_field *fields; /* terminated by key == NULL */
};

#define CONF_NO_OFF ((size_t)-1)

struct conf_ctx {
    const char *file;
    yaml_document_t *doc;
    struct conf_errors *errs;
    bool resolve;
    char path[512];
    size_t path_len;
};

struct conf_mark conf__mark(const yaml_node_t *n);
void conf__error(struct conf_ctx *ctx, struct conf_mark m, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Error at the current path. */
void conf__error_here(struct conf_ctx *ctx, struct conf_mark m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void conf__walk_struct(struct conf_ctx *ctx, const struct conf_type *t, yaml_node_t *node,
                       void *obj);
void conf__free_struct(const struct conf_type *t, void *obj);

#endif
