/* Scalar value parsers for the config: durations, sizes, integers, booleans,
 * socket addresses. Strict: the whole string must be consumed. */
#include "conf/conf.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parses a non-negative decimal prefix; *end points past it. */
static int parse_digits(const char *s, int64_t *out, const char **end)
{
    int64_t v = 0;
    const char *p = s;

    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (v > (INT64_MAX - (*p - '0')) / 10)
            return -2;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    *end = p;
    return 0;
}

int conf_parse_int(const char *s, int64_t *out, const char **err)
{
    const char *end;
    bool neg = false;
    int rc;

    if (*s == '-' || *s == '+') {
        neg = *s == '-';
        s++;
    }
    rc = parse_digits(s, out, &end);
    if (rc == -2 || (rc == 0 && *end)) {
        *err = rc == -2 ? "number too large" : "must be a whole number";
        return -1;
    }
    if (rc < 0) {
        *err = "must be a whole number";
        return -1;
    }
    if (neg)
        *out = -*out;
    return 0;
}

struct unit {
    const char *name;
    int64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, int64_t *out,
                            const char **err, const char *bad, bool unit_required)
{
    int64_t v;
    const char *end;

    if (parse_digits(s, &v, &end) < 0) {
        *err = bad;
        return -1;
    }
    if (!*end) {
        if (unit_required && v != 0) {
            *err = bad;
            return -1;
        }
        *out = v;
        return 0;
    }
    for (const struct unit *u = units; u->name; u++) {
        if (strcmp(end, u->name) == 0) {
            if (v > INT64_MAX / u->mult) {
                *err = "value too large";
                return -1;
            }
            *out = v * u->mult;
            return 0;
        }
    }
    *err = bad;
    return -1;
}

int conf_parse_duration_ms(const char *s, int64_t *out, const char **err)
{
    static const struct unit units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {NULL, 0}};
    return parse_with_units(s, units, out, err,
                            "must be a duration like 500ms, 10s, 2m or 1h", true);
}

int conf_parse_size(const char *s, int64_t *out, const char **err)
{
    static const struct unit units[] = {{"B", 1},
                                        {"KiB", 1024},
                                        {"MiB", 1024 * 1024},
                                        {"GiB", 1024LL * 1024 * 1024},
                                        {NULL, 0}};
    return parse_with_units(s, units, out, err,
                            "must be a size like 4096, 64KiB, 1MiB or 1GiB", false);
}

int conf_parse_bool(const char *s, bool *out, const char **err)
{
    static const char *yes[] = {"true", "yes", "on"};
    static const char *no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    *err = "must be true or false";
    return -1;
}

int conf_parse_addr(const char *s, bool resolve, bool passive, struct conf_addr *out,
                    char *err, size_t errlen)
{
    char host[256];
    const char *colon, *port_s;
    size_t hlen;

    memset(out, 0, sizeof(*out));
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "must be HOST:PORT or [IPV6]:PORT (got \"%s\")", s);
            return -1;
        }
        hlen = (size_t)(close - s - 1);
        if (hlen == 0 || hlen >= sizeof(host)) {
            snprintf(err, errlen, "bad IPv6 address in \"%s\"", s);
            return -1;
        }
        memcpy(host, s + 1, hlen);
        port_s = close + 2;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s || strchr(s, ':') != colon) {
            snprintf(err, errlen, "must be HOST:PORT or [IPV6]:PORT (got \"%s\")", s);
            return -1;
        }
        hlen = (size_t)(colon - s);
        if (hlen >= sizeof(host)) {
            snprintf(err, errlen, "host name too long");
            return -1;
        }
        memcpy(host, s, hlen);
        port_s = colon + 1;
    }
    host[hlen] = '\0';

    int64_t port;
    const char *perr;
    if (conf_parse_int(port_s, &port, &perr) < 0 || port < 1 || port > 65535) {
        snprintf(err, errlen, "port must be 1..65535 (got \"%s\")", port_s);
        return -1;
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    if (!resolve)
        hints.ai_flags |= AI_NUMERICHOST;
    int rc = getaddrinfo(host, port_s, &hints, &res);
    if (rc != 0 || !res) {
        if (!resolve && rc == EAI_NONAME)
            snprintf(err, errlen, "\"%s\" is not a numeric IP address", host);
        else
            snprintf(err, errlen, "cannot resolve \"%s\": %s", host, gai_strerror(rc));
        if (res)
            freeaddrinfo(res);
        return -1;
    }
    memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
    out->len = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    out->text = strdup(s);
    if (!out->text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}
