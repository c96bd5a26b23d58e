/* The test program's checks: one printed line each, counted for the
 * summary. */
#ifndef CHECK_H
#define CHECK_H

#include <stddef.h>

extern int checks_run;
extern int checks_failed;

/* Counts a check and prints "ok   <what>" or "FAIL <what>". */
void check(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* |got - want| <= 5e-5 + 1e-4 |want| everywhere (the Rust golden tests'
 * tolerance); on a mismatch writes the first one to `why`. */
int allclose(const float *got, const float *want, size_t n, char *why, size_t why_len);

void golden_cases(const char *data_dir);
void bad_arguments(void);
void kv_cache_loop(void);
void seq2seq_decode(const char *data_dir);

#endif
