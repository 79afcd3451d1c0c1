#ifndef CONF_CONF_H
#define CONF_CONF_H

#include "conf/conf-t.h"

#include <stdio.h>

/* Loads and validates a config file. Returns a new conf, or NULL with every
 * error found in errs (the caller prints them and calls conf_errors_free). */
struct conf *conf_load_file(const char *path, const struct conf_load_opts *opts,
                            struct conf_errors *errs);
/* Same from memory; name is used in error locations. */
struct conf *conf_load_buffer(const char *name, const char *buf, size_t len,
                              const struct conf_load_opts *opts, struct conf_errors *errs);
void conf_free(struct conf *c);
void conf_errors_free(struct conf_errors *errs);

/* Reads admin.token_file (conf_token.c): a regular file, not readable by
 * everyone, holding one non-empty token (a trailing newline is dropped).
 * Returns 0 and a malloc'ed token in *token (NULL when the config names no
 * token file), or -1 with "FILE:LINE:COL: admin.token_file: why" in err. */
int conf_admin_token_load(const struct conf *c, char **token, char *err, size_t errlen);
/* The same for admin.hooks_secret_file (the ?secret= the stock origins'
 * hook and notify URLs must carry), with "admin.hooks_secret_file" in err. */
int conf_admin_hooks_secret_load(const struct conf *c, char **secret, char *err, size_t errlen);

/* Prints one line per config key: "dotted.path<TAB>type<TAB>default", with
 * "*" for a pool's name and "[]" for a list element, the default spelled as
 * a config would ("-": none, "required"). For the tests that check
 * docs/CONFIG.md against the schema (rtmplb --dump-schema). */
void conf_schema_dump(FILE *out);

const struct conf_pool *conf_find_pool(const struct conf *c, const char *name);
const char *conf_policy_name(int policy);
/* enum conf_policy of a policy's name, or -1. */
int conf_policy_from_name(const char *name);
const char *conf_mode_name(int mode);
/* "publish", "play", or "-" (not known: tcp, or before publish/play). */
const char *conf_role_name(int role);

/* Scalar parsers (conf_value.c); return 0 or -1 with a message in err. */
int conf_parse_duration_ms(const char *s, int64_t *out, const char **err);
int conf_parse_size(const char *s, int64_t *out, const char **err);
int conf_parse_int(const char *s, int64_t *out, const char **err);
int conf_parse_bool(const char *s, bool *out, const char **err);
/* "HOST:PORT", "[V6]:PORT". passive: for listening (allows 0.0.0.0/::). */
int conf_parse_addr(const char *s, bool resolve, bool passive, struct conf_addr *out,
                    char *err, size_t errlen);

#endif
