/* libFuzzer target: what stock origins send rtmplb (lb/admin/compat.h).
 * First byte even: an nginx-rtmp notify form (split in two parts at the
 * second byte, as the URL's query and the POST body are), then the checks
 * a handler makes on it; odd: an SRS http_hooks JSON document. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lb/admin/compat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *s = (const char *)data + 2;
    size_t len = size - 2;
    if (data[0] & 1) {
        struct lb_srs_hook h;
        char err[256];
        if (lb_compat_srs_parse(s, len, &h, err, sizeof(err)) == 0) {
            if (strnlen(h.app, sizeof(h.app)) == sizeof(h.app) ||
                strnlen(h.stream, sizeof(h.stream)) == sizeof(h.stream))
                abort(); /* always terminated */
            if (h.action != LB_SRS_OTHER && (!h.app[0] || !h.stream[0] || strchr(h.app, '/')))
                abort(); /* a stream action always names a stream */
        } else if (!err[0]) {
            abort(); /* a refusal always says why */
        }
        return 0;
    }
    size_t cut = len ? data[1] % (len + 1) : 0;
    struct lb_compat_form f;
    const char *why = NULL;
    lb_compat_form_init(&f);
    if (lb_compat_form_parse(&f, s, cut, &why) == 0 &&
        lb_compat_form_parse(&f, s + cut, len - cut, &why) == 0) {
        if (f.n > LB_COMPAT_MAX_FIELDS)
            abort();
        for (size_t i = 0; i < f.n; i++) {
            if (strlen(f.f[i].name) > len || strlen(f.f[i].value) > len)
                abort(); /* decoding never grows */
            (void)lb_compat_reserved_field(f.f[i].name);
        }
        (void)lb_compat_form_get(&f, "name");
    } else if (!why) {
        abort();
    }
    lb_compat_form_free(&f);
    return 0;
}
