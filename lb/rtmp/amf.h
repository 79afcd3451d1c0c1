/* AMF0 (and AMF3 behind the 0x11 switch) decoding into an arena the caller
 * owns, plus encoders for the few replies rtmplb writes. Every length and
 * depth is bounded; strings point into the input (not NUL-terminated). */
#ifndef LB_RTMP_AMF_H
#define LB_RTMP_AMF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum amf_type {
    AMF_NUMBER,
    AMF_BOOLEAN,
    AMF_STRING,
    AMF_OBJECT,  /* children are properties (key set) */
    AMF_NULL,
    AMF_UNDEFINED,
    AMF_ARRAY,   /* ECMA, strict or AMF3 array: children, keys where named */
    AMF_DATE,
    AMF_INTEGER, /* AMF3 integer, value in num */
};

struct amf_value {
    uint8_t type;
    uint32_t len;   /* string: bytes; containers: children */
    const char *str;
    const char *key; /* property name, or NULL */
    uint32_t key_len;
    double num;
    int32_t first; /* first child index in the arena, -1: none */
    int32_t next;  /* next sibling, -1: none */
};

struct amf_limits {
    uint32_t max_depth;
    uint32_t max_string;
    uint32_t max_values;
};

struct amf_doc {
    struct amf_value *v; /* arena, cap entries */
    size_t cap;
    size_t n;
    int32_t top[16];     /* top-level values, in order */
    size_t n_top;
    const char *error;
};

/* Decodes the AMF0 values of a command message body. amf3_cmd: the body of
 * a type-17 message (skips its leading 0x00 format byte). Returns 0, or -1
 * with doc->error. */
int amf_decode_command(const uint8_t *p, size_t n, bool amf3_cmd, const struct amf_limits *lim,
                       struct amf_doc *doc);

const struct amf_value *amf_top(const struct amf_doc *doc, size_t i);
/* Property of an object (or named array member), or NULL. */
const struct amf_value *amf_get(const struct amf_doc *doc, const struct amf_value *obj,
                                const char *key);
bool amf_str_eq(const struct amf_value *v, const char *s);

/* Encoders. Each returns the new write position, or NULL when out of room
 * (and every later call on a NULL position stays NULL). */
uint8_t *amf0_put_number(uint8_t *p, const uint8_t *end, double v);
uint8_t *amf0_put_bool(uint8_t *p, const uint8_t *end, bool v);
uint8_t *amf0_put_string(uint8_t *p, const uint8_t *end, const char *s);
uint8_t *amf0_put_null(uint8_t *p, const uint8_t *end);
uint8_t *amf0_put_object_start(uint8_t *p, const uint8_t *end);
uint8_t *amf0_put_key(uint8_t *p, const uint8_t *end, const char *key);
uint8_t *amf0_put_object_end(uint8_t *p, const uint8_t *end);
/* A strict array's marker and count; the caller then puts count values. */
uint8_t *amf0_put_strict_array(uint8_t *p, const uint8_t *end, uint32_t count);
/* AMF3 encoders (used to build test input and AMF3 replies). */
uint8_t *amf3_put_u29(uint8_t *p, const uint8_t *end, uint32_t v);
uint8_t *amf3_put_string(uint8_t *p, const uint8_t *end, const char *s);
uint8_t *amf3_put_integer(uint8_t *p, const uint8_t *end, int32_t v);
uint8_t *amf3_put_double(uint8_t *p, const uint8_t *end, double v);

#endif
