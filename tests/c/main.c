/* The C API's test program: golden cases through the C API, then the
 * bad-argument codes, then a decoder loop on a KV cache, then the seq2seq
 * model's greedy decode. Usage: capi_test
 * <golden dir>. Exits 1 on any failed check. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "check.h"
#include "simd_attention.h"

int checks_run = 0;
int checks_failed = 0;

void check(int ok, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    checks_run++;
    if (!ok) checks_failed++;
    fputs(ok ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, args);
    putchar('\n');
    va_end(args);
}

int allclose(const float *got, const float *want, size_t n, char *why, size_t why_len) {
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        if (!(fabs(g - w) <= 5e-5 + 1e-4 * fabs(w))) {
            snprintf(why, why_len, " [%zu]: got %.9g, want %.9g", i, g, w);
            return 0;
        }
    }
    snprintf(why, why_len, "%s", "");
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s <golden dir>\n", argv[0]);
        return 2;
    }
    printf("backend: %s\n", simd_attention_backend_name());
    golden_cases(argv[1]);
    bad_arguments();
    kv_cache_loop();
    seq2seq_decode(argv[1]);
    printf("tests/c: %d/%d checks passed\n", checks_run - checks_failed, checks_run);
    return checks_failed ? 1 : 0;
}
