/* A decoder loop on a bf16 KV cache through the C API: each step appends
 * its positions and attends with the causal mask, and must give the bits
 * of simd_attention_sdpa over the filled rows as plain bf16 tensors with
 * the lower-right causal mask; a step past the capacity is refused and
 * changes neither the buffers nor len. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "simd_attention.h"

enum { B = 1, HKV = 2, HQ = 4, CAP = 12, E = 40, EV = 24 };

/* f32 to bf16, round to nearest even (the data holds no NaN). */
static uint16_t to_bf16(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits += 0x7fff + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

static float value_at(int tensor, size_t i) { return (float)sin(0.37 * (double)i + 1.3 * tensor); }

void kv_cache_loop(void) {
    static uint16_t key_buf[B * HKV * CAP * E], value_buf[B * HKV * CAP * EV];
    static float all_k[B * HKV * CAP * E], all_v[B * HKV * CAP * EV];
    for (size_t i = 0; i < B * HKV * CAP * E; i++) all_k[i] = value_at(0, i);
    for (size_t i = 0; i < B * HKV * CAP * EV; i++) all_v[i] = value_at(1, i);
    simd_attention_kv_cache cache = {
        .shape = {.batch = B, .kv_heads = HKV, .capacity = CAP, .qk_dim = E, .v_dim = EV},
        .key = {.storage = SIMD_ATTENTION_STORAGE_BF16, .data = key_buf, .len = B * HKV * CAP * E},
        .value = {.storage = SIMD_ATTENTION_STORAGE_BF16, .data = value_buf, .len = B * HKV * CAP * EV},
        .len = 0,
    };
    /* One workspace for the whole loop: sized for the most queries a step has. */
    size_t ws_len = 0;
    int rc = simd_attention_kv_cache_workspace_len(cache.shape, HQ, 5, &ws_len);
    check(rc == SIMD_ATTENTION_OK, "kv cache workspace_len: %d", rc);
    static float ws[1 << 16], plain_ws[1 << 16];
    check(ws_len <= sizeof ws / sizeof ws[0], "kv cache workspace fits (%zu floats)", ws_len);
    const size_t steps[] = {5, 1, 3, 1};
    for (size_t step = 0; step < sizeof steps / sizeof steps[0]; step++) {
        size_t at = cache.len, n = steps[step], len = at + n;
        float new_k[B * HKV * 3 * E + B * HKV * 5 * E], new_v[B * HKV * 5 * EV];
        for (size_t h = 0; h < B * HKV; h++) {
            memcpy(new_k + h * n * E, all_k + (h * CAP + at) * E, n * E * sizeof(float));
            memcpy(new_v + h * n * EV, all_v + (h * CAP + at) * EV, n * EV * sizeof(float));
        }
        rc = simd_attention_kv_cache_append(&cache, n, new_k, B * HKV * n * E, new_v, B * HKV * n * EV);
        check(rc == SIMD_ATTENTION_OK && cache.len == len, "kv cache append %zu at %zu: %d, len %zu", n, at, rc,
              cache.len);
        /* The filled rows as plain (B, Hkv, len, ·) bf16 tensors. */
        static uint16_t plain_k[B * HKV * CAP * E], plain_v[B * HKV * CAP * EV];
        for (size_t h = 0; h < B * HKV; h++) {
            for (size_t i = 0; i < len * E; i++) plain_k[h * len * E + i] = to_bf16(all_k[h * CAP * E + i]);
            for (size_t i = 0; i < len * EV; i++) plain_v[h * len * EV + i] = to_bf16(all_v[h * CAP * EV + i]);
        }
        float q[B * HQ * 5 * E];
        for (size_t i = 0; i < B * HQ * n * E; i++) q[i] = value_at(2 + (int)step, i);
        simd_attention_tensor query = {.storage = SIMD_ATTENTION_STORAGE_F32, .data = q, .len = B * HQ * n * E};
        simd_attention_tensor key = {.storage = SIMD_ATTENTION_STORAGE_BF16, .data = plain_k, .len = B * HKV * len * E};
        simd_attention_tensor value = {
            .storage = SIMD_ATTENTION_STORAGE_BF16, .data = plain_v, .len = B * HKV * len * EV};
        simd_attention_mask causal = {.kind = SIMD_ATTENTION_MASK_CAUSAL};
        simd_attention_mask lower_right = {.kind = SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT};
        simd_attention_sdpa_shape shape = {B, HQ, HKV, n, len, E, EV};
        size_t plain_ws_len = 0;
        simd_attention_sdpa_workspace_len(shape, false, &plain_ws_len);
        float got[B * HQ * 5 * EV], want[B * HQ * 5 * EV];
        size_t out_len = B * HQ * n * EV;
        int rc_plain = simd_attention_sdpa(shape, &query, &key, &value, &lower_right, NULL, want, out_len, NULL, 0,
                                           plain_ws, plain_ws_len);
        rc = simd_attention_kv_cache_attend(&cache, HQ, n, &query, &causal, NULL, got, out_len, ws, ws_len);
        check(rc == SIMD_ATTENTION_OK && rc_plain == SIMD_ATTENTION_OK &&
                  memcmp(got, want, out_len * sizeof(float)) == 0,
              "kv cache attend at %zu (%zu queries) has the bits of sdpa: %d, %d", at, n, rc, rc_plain);
    }
    /* Past the capacity: refused, nothing written. */
    static uint16_t before[B * HKV * CAP * E];
    memcpy(before, key_buf, sizeof key_buf);
    float more[B * HKV * 3 * E] = {0}, more_v[B * HKV * 3 * EV] = {0};
    rc = simd_attention_kv_cache_append(&cache, 3, more, B * HKV * 3 * E, more_v, B * HKV * 3 * EV);
    check(rc == SIMD_ATTENTION_ERROR_CAPACITY && cache.len == 10 && memcmp(before, key_buf, sizeof key_buf) == 0,
          "kv cache append past the capacity is refused and writes nothing: %d", rc);
    rc = simd_attention_kv_cache_append(NULL, 1, more, B * HKV * E, more_v, B * HKV * EV);
    check(rc == SIMD_ATTENTION_ERROR_NULL, "kv cache append to NULL: %d", rc);
}
