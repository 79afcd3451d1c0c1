/* libFuzzer target: the config loader (libyaml + schema walk + cross
 * checks) on arbitrary bytes. Numeric addresses only: no DNS while fuzzing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "conf/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct conf_errors errs;
    struct conf_load_opts opts = {.resolve_names = false, .max_bytes = 64 * 1024};
    struct conf *c = conf_load_buffer("fuzz.yaml", (const char *)data, size, &opts, &errs);
    /* Exactly one of: a config, or at least one error. */
    if ((c != NULL) == (errs.n > 0))
        abort();
    conf_free(c);
    conf_errors_free(&errs);
    return 0;
}
