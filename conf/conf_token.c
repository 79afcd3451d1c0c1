/* The admin bearer token: read and checked here so that `rtmplb -t` and the
 * admin server agree on what a usable token file is. */
#include "conf/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct secret_key;
static int load_secret(const struct conf *c, const struct secret_key *k, char **token, char *err,
                       size_t errlen);

/* Which key is read: its path, its location in the config, its name. */
struct secret_key {
    const char *path;
    const struct conf_mark *m;
    const char *key;
};

static int fail(const struct conf *c, const struct secret_key *k, char *err, size_t errlen,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int fail(const struct conf *c, const struct secret_key *k, char *err, size_t errlen,
                const char *fmt, ...)
{
    char why[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    const struct conf_mark *m = k->m;
    snprintf(err, errlen, "%s:%u:%u: %s: %s", c->path ? c->path : "config",
             m->line ? m->line : 1, m->col ? m->col : 1, k->key, why);
    return -1;
}

int conf_admin_token_load(const struct conf *c, char **token, char *err, size_t errlen)
{
    struct secret_key k = {c->admin.token_file, &c->admin.token_file_mark, "admin.token_file"};
    return load_secret(c, &k, token, err, errlen);
}

int conf_admin_hooks_secret_load(const struct conf *c, char **secret, char *err, size_t errlen)
{
    struct secret_key k = {c->admin.hooks_secret_file, &c->admin.hooks_secret_file_mark,
                           "admin.hooks_secret_file"};
    return load_secret(c, &k, secret, err, errlen);
}

static int load_secret(const struct conf *c, const struct secret_key *k, char **token, char *err,
                       size_t errlen)
{
    const char *path = k->path;
    char buf[CONF_TOKEN_MAX + 2];
    struct stat st;

    *token = NULL;
    if (!path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return fail(c, k, err, errlen, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fail(c, k, err, errlen, "%s is not a regular file", path);
    }
    if (st.st_mode & S_IROTH) {
        close(fd);
        return fail(c, k, err, errlen,
                    "%s is readable by everyone (mode %04o): run chmod o-r on it", path,
                    (unsigned)(st.st_mode & 07777));
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            return fail(c, k, err, errlen, "cannot read %s: %s", path, strerror(e));
        }
        if (r == 0 || (len += (size_t)r) == sizeof(buf) - 1)
            break;
    }
    close(fd);
    buf[len] = '\0';
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                   buf[len - 1] == '\t'))
        buf[--len] = '\0';
    if (len == 0)
        return fail(c, k, err, errlen, "%s is empty", path);
    if (len > CONF_TOKEN_MAX)
        return fail(c, k, err, errlen, "%s: the token is longer than %d bytes", path,
                    CONF_TOKEN_MAX);
    for (size_t i = 0; i < len; i++)
        if (buf[i] <= ' ' || buf[i] > '~')
            return fail(c, k, err, errlen,
                        "%s: the token must be one line of printable characters without spaces "
                        "(byte %zu is not)",
                        path, i + 1);
    *token = strdup(buf);
    if (!*token)
        return fail(c, k, err, errlen, "out of memory");
    return 0;
}
