/* The C API's refusals: each NULL argument, short buffers, bad shapes,
 * overflowing sizes, unknown kinds, misalignment, aliasing and stale key
 * caches give their negative codes, and a refused call writes nothing
 * (outputs start as a sentinel and must still hold it). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "simd_attention.h"

#define N_OUT 64
#define N_WS 8192

static float out[N_OUT], weights[N_OUT], ws[N_WS];

static const char *code_name(int code) {
    static const char *names[] = {
        "OK",       "ERROR_NULL",     "ERROR_LENGTH",  "ERROR_DIMENSION",  "ERROR_OVERFLOW",
        "ERROR_OUT_OF_BOUNDS",        "ERROR_OVERLAPPING", "ERROR_VALUE",  "ERROR_BACKEND_UNAVAILABLE",
        "ERROR_CAPACITY", "ERROR_STORAGE", "ERROR_ALIGNMENT", "ERROR_ALIASING", "ERROR_KIND", "ERROR_CACHE"};
    return code <= 0 && code > -(int)(sizeof names / sizeof *names) ? names[-code] : "unknown";
}

static void fill(float *p, size_t n) {
    const uint32_t sentinel = 0x7fa5a5a5u; /* a NaN no kernel produces */
    for (size_t i = 0; i < n; i++) memcpy(&p[i], &sentinel, sizeof sentinel);
}

static int untouched(const float *p, size_t n) {
    const uint32_t sentinel = 0x7fa5a5a5u;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&p[i], &sentinel, sizeof sentinel) != 0) return 0;
    return 1;
}

static void reset(void) {
    fill(out, N_OUT), fill(weights, N_OUT), fill(ws, N_WS);
}

/* The call gave `want`, and out, weights and the workspace still hold the
 * sentinel. */
static void refused(const char *what, int rc, int want) {
    int clean = untouched(out, N_OUT) && untouched(weights, N_OUT) && untouched(ws, N_WS);
    check(rc == want && clean, "%s -> %s (got %d %s)%s", what, code_name(want), rc, code_name(rc),
          clean ? "" : ", but an output was written");
    reset();
}

/* `call(a)`, where `a` is the struct `type` `valid` with the changes `...`
 * made to it (assignments to `a`'s fields), is refused with `want`. */
#define REFUSED(what, want, call, type, valid, ...)                                                                \
    do {                                                                                                           \
        struct type a = valid;                                                                                     \
        __VA_ARGS__;                                                                                               \
        refused(what, call(a), want);                                                                              \
    } while (0)

static void status_messages(void) {
    const char *seen[15];
    int ok = 1;
    for (int code = 0; code >= -14; code--) {
        const char *m = simd_attention_status_message(code);
        ok &= m != NULL && strcmp(m, "unknown status code") != 0;
        for (int j = 0; j < -code; j++) ok &= strcmp(seen[j], m) != 0;
        seen[-code] = m;
    }
    check(ok, "status messages: codes 0..-14 each have their own message");
    check(!strcmp(simd_attention_status_message(-15), "unknown status code") &&
              !strcmp(simd_attention_status_message(1), "unknown status code"),
          "status messages: -15 and 1 are unknown status codes");
    check(SIMD_ATTENTION_ERROR_CACHE == -14 && SIMD_ATTENTION_OK == 0, "status codes: the enum runs 0..-14");
}

static void softmax(void) {
    simd_attention_score_shape shape = {2, 2, 3};
    size_t lens[2] = {1, 3};
    unsigned char keep[6] = {1, 0, 1, 2, 1, 1};
    simd_attention_mask valid = {.kind = SIMD_ATTENTION_MASK_VALID_LENS, .valid_lens = lens, .len = 2};
    int rc;

    rc = simd_attention_masked_softmax(NULL, 12, shape, NULL);
    refused("softmax: scores NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    check(simd_attention_masked_softmax(NULL, 0, (simd_attention_score_shape){0, 2, 3}, NULL) == SIMD_ATTENTION_OK,
          "softmax: NULL with length 0 is an empty buffer -> OK");
    rc = simd_attention_masked_softmax(out, 11, shape, &valid);
    refused("softmax: scores 11 for (2, 2, 3)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_masked_softmax(out, 12, (simd_attention_score_shape){SIZE_MAX, 2, 3}, NULL);
    refused("softmax: shape (SIZE_MAX, 2, 3)", rc, SIMD_ATTENTION_ERROR_OVERFLOW);
    rc = simd_attention_masked_softmax(out, SIZE_MAX / 2, shape, NULL);
    refused("softmax: scores_len SIZE_MAX/2 (byte size overflows)", rc, SIMD_ATTENTION_ERROR_OVERFLOW);
    rc = simd_attention_masked_softmax(out, 12, shape, &(simd_attention_mask){.kind = 99});
    refused("softmax: mask kind 99", rc, SIMD_ATTENTION_ERROR_KIND);
    rc = simd_attention_masked_softmax(out, 12, shape, &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT});
    refused("softmax: causal lower-right (SDPA only)", rc, SIMD_ATTENTION_ERROR_KIND);
    rc = simd_attention_masked_softmax(out, 12, shape,
                                       &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_VALID_LENS, .len = 2});
    refused("softmax: valid_lens NULL with len 2", rc, SIMD_ATTENTION_ERROR_NULL);
    valid.len = 1;
    rc = simd_attention_masked_softmax(out, 12, shape, &valid);
    refused("softmax: valid_lens of 1 for B = 2", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_masked_softmax(out, 12, shape,
                                       &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_KEEP, .keep = keep, .len = 6});
    refused("softmax: bool mask byte 2", rc, SIMD_ATTENTION_ERROR_VALUE);
    rc = simd_attention_masked_softmax(out, 12, shape,
                                       &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_ADDITIVE, .additive = out + 6, .len = 6});
    refused("softmax: float mask inside the scores", rc, SIMD_ATTENTION_ERROR_ALIASING);
}

/* B = 1, Q = 2, K = 3, query_dim = key_dim = value_dim = 2, H = 4. */
static const float w_q[8] = {0.1f, -0.2f, 0.3f, 0.4f, -0.5f, 0.6f, 0.7f, -0.8f};
static const float w_k[8] = {0.2f, 0.1f, -0.3f, 0.5f, 0.4f, -0.6f, 0.1f, 0.9f};
static const float w_v[4] = {0.5f, -1.0f, 0.25f, 0.75f};
static const float queries[4] = {1, 2, -1, 0.5f};
static const float keys[6] = {0.5f, -0.5f, 1, 1, -2, 0.25f};
static const float values[6] = {1, 2, 3, 4, 5, 6};

/* The arguments of the entry points whose refusals are checked case by
 * case, as structs: each case is the valid call with one or two arguments
 * changed (the KC, FWD and SDPA macros below). */
struct key_cache_args {
    const simd_attention_additive_params *params;
    simd_attention_shape shape;
    const float *keys;
    size_t keys_len;
    const float *values;
    size_t values_len;
    float *buffer;
    size_t buffer_len;
    simd_attention_key_cache *cache;
};

static int key_cache(struct key_cache_args a) {
    return simd_attention_additive_key_cache(a.params, a.shape, a.keys, a.keys_len, a.values, a.values_len, a.buffer,
                                             a.buffer_len, a.cache);
}

/* The outputs every attention call takes. */
struct outputs {
    float *out;
    size_t out_len;
    float *weights;
    size_t weights_len;
    float *ws;
    size_t ws_len;
};

struct forward_args {
    const simd_attention_additive_params *params;
    const simd_attention_key_cache *cache;
    size_t num_queries;
    const float *queries;
    size_t queries_len;
    const simd_attention_mask *valid_lens;
    struct outputs o;
};

static int forward_cached(struct forward_args a) {
    return simd_attention_additive_forward_cached(a.params, a.cache, a.num_queries, a.queries, a.queries_len,
                                                  a.valid_lens, a.o.out, a.o.out_len, a.o.weights, a.o.weights_len,
                                                  a.o.ws, a.o.ws_len);
}

struct sdpa_args {
    simd_attention_sdpa_shape shape;
    const simd_attention_tensor *q, *k, *v;
    const simd_attention_mask *mask;
    const float *scale;
    struct outputs o;
};

static int sdpa_call(struct sdpa_args a) {
    return simd_attention_sdpa(a.shape, a.q, a.k, a.v, a.mask, a.scale, a.o.out, a.o.out_len, a.o.weights,
                               a.o.weights_len, a.o.ws, a.o.ws_len);
}

static void additive(void) {
    simd_attention_additive_params params = {w_q, 8, w_k, 8, w_v, 4, 4, 2, 2};
    simd_attention_shape shape = {1, 2, 3, 2, 2, 2};
    size_t lens[1] = {2}, len = 12345, cache_len = 0, ws_len = 0;
    simd_attention_mask valid = {.kind = SIMD_ATTENTION_MASK_VALID_LENS, .valid_lens = lens, .len = 1};
    int rc;

    rc = simd_attention_additive_key_cache_len(SIZE_MAX, 2, 4, 2, &len);
    refused("additive: key cache len for SIZE_MAX x 2 keys", rc, SIMD_ATTENTION_ERROR_OVERFLOW);
    check(len == 12345, "additive: refused length query left *len alone");
    rc = simd_attention_additive_key_cache_len(1, 3, 4, 2, NULL);
    refused("additive: key cache len, len NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    rc = simd_attention_additive_cached_workspace_len(NULL, shape, 1, &len);
    refused("additive: cached workspace len, params NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    rc = simd_attention_additive_workspace_len(&params, (simd_attention_shape){SIZE_MAX, 2, 3, 2, 2, 2}, 1, &len);
    refused("additive: workspace len, batch SIZE_MAX", rc, SIMD_ATTENTION_ERROR_OVERFLOW);

    rc = simd_attention_additive_key_cache_len(1, 3, 4, 2, &cache_len);
    rc |= simd_attention_additive_cached_workspace_len(&params, shape, 1, &ws_len);
    check(rc == SIMD_ATTENTION_OK && cache_len <= N_WS && ws_len <= N_WS, "additive: sizes %zu and %zu", cache_len,
          ws_len);
    static float buffer[N_WS];
    simd_attention_key_cache cache, zero = {0};
    memset(&cache, 0xab, sizeof cache);
    simd_attention_key_cache garbage = cache;
    fill(buffer, N_WS);

    /* The key cache: every refusal leaves the buffer and the handle alone. */
    struct key_cache_args kc = {&params, shape, keys, 6, values, 6, buffer, cache_len, &cache};
#define KC(what, want, ...)                                                                                         \
    do {                                                                                                           \
        struct key_cache_args a = kc;                                                                              \
        __VA_ARGS__;                                                                                               \
        int rc_ = key_cache(a), clean_ = untouched(buffer, N_WS) && !memcmp(&cache, &garbage, sizeof cache);       \
        check(rc_ == (want) && clean_, "additive: key cache: %s -> %s (got %d)%s", what, code_name(want), rc_,     \
              clean_ ? "" : ", but the buffer or handle was written");                                             \
    } while (0)
    simd_attention_additive_params no_wq = params, short_wq = params;
    no_wq.w_q = NULL, short_wq.w_q_len = 7;
    simd_attention_shape wrong_dim = shape, huge = shape;
    wrong_dim.query_dim = 3, huge.batch = SIZE_MAX;
    KC("params NULL", SIMD_ATTENTION_ERROR_NULL, a.params = NULL);
    KC("W_q NULL", SIMD_ATTENTION_ERROR_NULL, a.params = &no_wq);
    KC("W_q 7 floats for 4 x 2", SIMD_ATTENTION_ERROR_LENGTH, a.params = &short_wq);
    KC("keys NULL", SIMD_ATTENTION_ERROR_NULL, a.keys = NULL);
    KC("values NULL", SIMD_ATTENTION_ERROR_NULL, a.values = NULL);
    KC("buffer NULL", SIMD_ATTENTION_ERROR_NULL, a.buffer = NULL);
    KC("handle NULL", SIMD_ATTENTION_ERROR_NULL, a.cache = NULL);
    KC("keys 5 floats", SIMD_ATTENTION_ERROR_LENGTH, a.keys_len = 5);
    KC("buffer one float short", SIMD_ATTENTION_ERROR_LENGTH, a.buffer_len = cache_len - 1);
    KC("shape.query_dim 3 for W_q's 2", SIMD_ATTENTION_ERROR_DIMENSION, a.shape = wrong_dim);
    KC("batch SIZE_MAX", SIMD_ATTENTION_ERROR_OVERFLOW, a.shape = huge);
    KC("buffer over the values", SIMD_ATTENTION_ERROR_ALIASING, a.buffer = (float *)values, a.buffer_len = 6);
#undef KC

    /* The cached forward: each case is the valid call with arguments changed. */
    struct forward_args fwd = {&params, &cache, 2, queries, 4, NULL, {out, 4, weights, 6, ws, ws_len}};
#define FWD(what, want, ...) REFUSED("additive: forward" what, want, forward_cached, forward_args, fwd, __VA_ARGS__)
    /* Handles that were never filled. */
    FWD(" with a zeroed handle", SIMD_ATTENTION_ERROR_CACHE, a.cache = &zero);
    FWD(" with a handle a refused call left alone", SIMD_ATTENTION_ERROR_CACHE, a.cache = &garbage);

    rc = key_cache(kc);
    check(rc == SIMD_ATTENTION_OK, "additive: key cache built (status %d)", rc);
    struct forward_args with_lens = fwd;
    with_lens.valid_lens = &valid;
    rc = forward_cached(with_lens);
    check(rc == SIMD_ATTENTION_OK && weights[2] == 0.0f && weights[5] == 0.0f,
          "additive: forward_cached OK, keys past valid_len weigh 0 (status %d)", rc);
    reset();

    simd_attention_additive_params other = {w_q, 4, w_k, 4, w_v, 2, 2, 2, 2};
    FWD(" with params of hidden 2 on a hidden-4 cache", SIMD_ATTENTION_ERROR_CACHE, a.params = &other);
    FWD(", params NULL", SIMD_ATTENTION_ERROR_NULL, a.params = NULL);
    FWD(", cache NULL", SIMD_ATTENTION_ERROR_NULL, a.cache = NULL);
    FWD(", queries NULL", SIMD_ATTENTION_ERROR_NULL, a.queries = NULL);
    FWD(", out NULL", SIMD_ATTENTION_ERROR_NULL, a.o.out = NULL);
    FWD(", weights NULL with length 6", SIMD_ATTENTION_ERROR_NULL, a.o.weights = NULL);
    FWD(", workspace NULL", SIMD_ATTENTION_ERROR_NULL, a.o.ws = NULL);
    FWD(", queries 3 floats", SIMD_ATTENTION_ERROR_LENGTH, a.queries_len = 3);
    FWD(", out 3 floats", SIMD_ATTENTION_ERROR_LENGTH, a.o.out_len = 3);
    FWD(", weights 5 floats", SIMD_ATTENTION_ERROR_LENGTH, a.o.weights_len = 5);
    FWD(", workspace one float short", SIMD_ATTENTION_ERROR_LENGTH, a.o.ws_len = ws_len - 1);
    valid.len = 2;
    FWD(", valid_lens of 2 for B = 1", SIMD_ATTENTION_ERROR_LENGTH, a.valid_lens = &valid);
    FWD(", causal mask (not a valid_lens)", SIMD_ATTENTION_ERROR_KIND,
        a.valid_lens = &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_CAUSAL});
    FWD(", num_queries SIZE_MAX", SIMD_ATTENTION_ERROR_OVERFLOW, a.num_queries = SIZE_MAX);
    FWD(", weights overlapping out", SIMD_ATTENTION_ERROR_ALIASING, a.o.weights = out + 2);
    fill(buffer, N_WS);
    FWD(", workspace inside the cache buffer", SIMD_ATTENTION_ERROR_ALIASING, a.o.ws = buffer);
#undef FWD
    simd_attention_inputs inputs = {.queries = queries, .queries_len = 4, .keys = keys, .keys_len = 6,
                                     .values = values, .values_len = 6};
    rc = simd_attention_additive_forward(&params, shape, inputs, NULL, out, 4, weights, 6, NULL, 0);
    refused("additive: uncached forward, empty workspace", rc, SIMD_ATTENTION_ERROR_LENGTH);
    inputs.values = NULL;
    rc = simd_attention_additive_forward(&params, shape, inputs, NULL, out, 4, weights, 6, ws, N_WS);
    refused("additive: uncached forward, values NULL", rc, SIMD_ATTENTION_ERROR_NULL);
}

/* B = 1, Hq = 2, Hkv = 1, L = 2, S = 3, E = 4, Ev = 2. */
static const float q_data[16] = {1, 0, 0, 1, 0, 1, 1, 0, 0.5f, 0.5f, 0, 0, -1, 0, 1, 0};
static const float k_data[12] = {1, 2, 3, 4, -1, 0, 1, 0, 0.5f, 0, 0, 0.5f};
static const float v_data[6] = {1, 2, 3, 4, 5, 6};

static void sdpa(void) {
    simd_attention_sdpa_shape shape = {1, 2, 1, 2, 3, 4, 2};
    simd_attention_tensor q = {.data = q_data, .len = 16}, k = {.data = k_data, .len = 12},
                          v = {.data = v_data, .len = 6};
    size_t ws_len = 0, w_ws_len = 0, len = 777;
    int rc = simd_attention_sdpa_workspace_len(shape, 0, &ws_len);
    rc |= simd_attention_sdpa_workspace_len(shape, 1, &w_ws_len);
    check(rc == SIMD_ATTENTION_OK && ws_len <= N_WS && w_ws_len <= N_WS, "sdpa: workspaces %zu and %zu", ws_len,
          w_ws_len);
    rc = simd_attention_sdpa(shape, &q, &k, &v, NULL, NULL, out, 8, weights, 12, ws, w_ws_len);
    check(rc == SIMD_ATTENTION_OK, "sdpa: a valid call -> OK (status %d)", rc);
    reset();

    rc = simd_attention_sdpa_workspace_len(shape, 0, NULL);
    refused("sdpa: workspace len, len NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    rc = simd_attention_sdpa_workspace_len((simd_attention_sdpa_shape){1, 1, 1, SIZE_MAX, 3, SIZE_MAX, 2}, 0, &len);
    refused("sdpa: workspace len, L x E overflows", rc, SIMD_ATTENTION_ERROR_OVERFLOW);
    check(len == 777, "sdpa: refused length query left *len alone");

    struct sdpa_args ok = {shape, &q, &k, &v, NULL, NULL, {out, 8, NULL, 0, ws, ws_len}};
#define SDPA(what, want, ...) REFUSED("sdpa: " what, want, sdpa_call, sdpa_args, ok, __VA_ARGS__)
    simd_attention_tensor null_data = q, q8_query = q, unknown = q, bf16_value = v, odd = k;
    null_data.data = NULL;
    q8_query.storage = SIMD_ATTENTION_STORAGE_Q8, q8_query.scales = k_data, q8_query.scales_len = 4;
    unknown.storage = 9;
    bf16_value.storage = SIMD_ATTENTION_STORAGE_BF16, bf16_value.len = 6;
    odd.storage = SIMD_ATTENTION_STORAGE_BF16, odd.data = (const char *)k_data + 1;
    simd_attention_sdpa_shape bad_heads = shape, huge = shape;
    bad_heads.q_heads = 3, huge.batch = SIZE_MAX;
    unsigned char keep[12] = {1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
    simd_attention_mask bad_batch = {.kind = SIMD_ATTENTION_MASK_KEEP, .keep = keep, .len = 12, .batch = 3, .heads = 1};
    simd_attention_mask lens = {.kind = SIMD_ATTENTION_MASK_VALID_LENS, .valid_lens = &len, .len = 1};
    float scale = 0.5f;
    simd_attention_sdpa_shape gqa3 = {1, 3, 2, 2, 3, 4, 2};
    float q3[24] = {0}, k3[24] = {0}, v3[12] = {0};
    simd_attention_tensor tq3 = {.data = q3, .len = 24}, tk3 = {.data = k3, .len = 24}, tv3 = {.data = v3, .len = 12};

    SDPA("query NULL", SIMD_ATTENTION_ERROR_NULL, a.q = NULL);
    SDPA("key NULL", SIMD_ATTENTION_ERROR_NULL, a.k = NULL);
    SDPA("value NULL", SIMD_ATTENTION_ERROR_NULL, a.v = NULL);
    SDPA("query.data NULL with len 16", SIMD_ATTENTION_ERROR_NULL, a.q = &null_data);
    SDPA("out NULL", SIMD_ATTENTION_ERROR_NULL, a.o.out = NULL);
    SDPA("weights NULL with length 12", SIMD_ATTENTION_ERROR_NULL, a.o.weights_len = 12, a.o.ws_len = w_ws_len);
    SDPA("workspace NULL", SIMD_ATTENTION_ERROR_NULL, a.o.ws = NULL);
    SDPA("out 7 floats", SIMD_ATTENTION_ERROR_LENGTH, a.o.out_len = 7);
    SDPA("weights 11 floats", SIMD_ATTENTION_ERROR_LENGTH, a.o.weights = weights, a.o.weights_len = 11,
         a.o.ws_len = w_ws_len);
    SDPA("workspace one float short", SIMD_ATTENTION_ERROR_LENGTH, a.scale = &scale, a.o.ws_len = ws_len - 1);
    SDPA("batch SIZE_MAX", SIMD_ATTENTION_ERROR_OVERFLOW, a.shape = huge);
    SDPA("q_heads 3 with a query of 2 heads (16 floats)", SIMD_ATTENTION_ERROR_LENGTH, a.shape = bad_heads);
    SDPA("storage 9", SIMD_ATTENTION_ERROR_KIND, a.q = &unknown);
    SDPA("q8 query", SIMD_ATTENTION_ERROR_STORAGE, a.q = &q8_query);
    SDPA("f32 key with bf16 value", SIMD_ATTENTION_ERROR_STORAGE, a.v = &bf16_value);
    SDPA("bf16 key at an odd address", SIMD_ATTENTION_ERROR_ALIGNMENT, a.k = &odd);
    SDPA("bool mask with batch 3 for B = 1", SIMD_ATTENTION_ERROR_DIMENSION, a.mask = &bad_batch);
    SDPA("valid_lens mask (not an SDPA mask)", SIMD_ATTENTION_ERROR_KIND, a.mask = &lens);
    SDPA("workspace over the key", SIMD_ATTENTION_ERROR_ALIASING, a.o.ws = (float *)k_data);
    SDPA("q_heads 3 not a multiple of kv_heads 2", SIMD_ATTENTION_ERROR_DIMENSION, a.shape = gqa3, a.q = &tq3,
         a.k = &tk3, a.v = &tv3, a.o.out_len = 12, a.o.ws_len = N_WS);
#undef SDPA
}

/* d2l's other operators: B = 1, Q = 2, K = 3, all widths 2 (the inputs
 * above); MHA with 2 heads of width 1 over W_q, W_k, W_v, W_o of (2, 2). */
static void d2l_operators(void) {
    simd_attention_shape shape = {1, 2, 3, 2, 2, 2};
    simd_attention_inputs inputs = {queries, 4, keys, 6, values, 6};
    simd_attention_linear lin = {w_k, 4, NULL, 0};
    simd_attention_mha_params mha = {lin, lin, lin, lin, 2, 2};
    size_t len = 12345;
    int rc;

    rc = simd_attention_dot_forward(shape, (simd_attention_inputs){NULL, 4, keys, 6, values, 6}, NULL, out, 4, NULL,
                                    0, ws, N_WS);
    refused("dot: queries NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    rc = simd_attention_dot_forward(shape, (simd_attention_inputs){queries, 4, values, 6, keys, 5}, NULL, out, 4,
                                    NULL, 0, ws, N_WS);
    refused("dot: values 5 for (1, 3, 2)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_dot_forward((simd_attention_shape){1, 2, 3, 2, 3, 2}, inputs, NULL, out, 4, NULL, 0, ws,
                                    N_WS);
    refused("dot: key_dim 3 for query_dim 2", rc, SIMD_ATTENTION_ERROR_DIMENSION);
    rc = simd_attention_dot_forward(shape, inputs, &(simd_attention_mask){.kind = SIMD_ATTENTION_MASK_CAUSAL}, out,
                                    4, NULL, 0, ws, N_WS);
    refused("dot: causal mask (SDPA and softmax only)", rc, SIMD_ATTENTION_ERROR_KIND);
    rc = simd_attention_dot_forward(shape, inputs, NULL, out, 4, out + 2, 6, ws, N_WS);
    refused("dot: weights over out", rc, SIMD_ATTENTION_ERROR_ALIASING);

    rc = simd_attention_bilinear_workspace_len(w_q, 3, shape, 1, &len);
    refused("bilinear: workspace len, W_a of 3 for (2, 2)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    check(len == 12345, "bilinear: refused length query left *len alone");
    rc = simd_attention_bilinear_forward(NULL, 4, shape, inputs, NULL, out, 4, NULL, 0, ws, N_WS);
    refused("bilinear: W_a NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    rc = simd_attention_bilinear_forward(w_q, 4, shape, inputs, NULL, out, 3, NULL, 0, ws, N_WS);
    refused("bilinear: out 3 for (1, 2, 2)", rc, SIMD_ATTENTION_ERROR_LENGTH);

    rc = simd_attention_mha_workspace_len(NULL, shape, 1, &len);
    refused("mha: workspace len, params NULL", rc, SIMD_ATTENTION_ERROR_NULL);
    simd_attention_mha_params three_heads = mha;
    three_heads.num_heads = 3;
    rc = simd_attention_mha_forward(&three_heads, shape, inputs, NULL, out, 4, NULL, 0, ws, N_WS);
    refused("mha: 3 heads for num_hiddens 2", rc, SIMD_ATTENTION_ERROR_DIMENSION);
    simd_attention_mha_params short_bias = mha;
    short_bias.w_o.bias = w_v, short_bias.w_o.bias_len = 1;
    rc = simd_attention_mha_forward(&short_bias, shape, inputs, NULL, out, 4, NULL, 0, ws, N_WS);
    refused("mha: W_o bias of 1 for num_hiddens 2", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_mha_forward(&mha, shape, inputs, NULL, out, 4, weights, 11, ws, N_WS);
    refused("mha: weights 11 for (2 heads, 2, 3)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_mha_forward(&mha, shape, inputs, NULL, out, 4, NULL, 0, ws, 1);
    refused("mha: workspace of 1", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_mha_workspace_len(&mha, shape, 1, &len);
    rc |= simd_attention_mha_forward(&mha, shape, inputs, NULL, out, 4, weights, 12, ws, len);
    check(rc == SIMD_ATTENTION_OK && !untouched(out, 4), "mha: 2 heads run in a workspace of %zu (status %d)", len,
          rc);
    reset();

    simd_attention_inputs nw = {queries, 2, keys, 6, values, 6};
    rc = simd_attention_nadaraya_watson(1.0f, 2, 3, nw, out, 2, NULL, 0);
    refused("nadaraya-watson: weights NULL (required)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_nadaraya_watson(1.0f, 2, 3, nw, out, 2, out, 6);
    refused("nadaraya-watson: weights over out", rc, SIMD_ATTENTION_ERROR_ALIASING);
    rc = simd_attention_nadaraya_watson(1.0f, 2, 3, (simd_attention_inputs){queries, 2, keys, 6, values, 5}, out, 2,
                                        weights, 6);
    refused("nadaraya-watson: values 5 for (2, 3)", rc, SIMD_ATTENTION_ERROR_LENGTH);
    rc = simd_attention_nadaraya_watson(1.0f, 3, 2, nw, out, 2, weights, 6);
    refused("nadaraya-watson: shape (3, 2) for 2 queries", rc, SIMD_ATTENTION_ERROR_LENGTH);
}

void bad_arguments(void) {
    reset();
    status_messages();
    softmax();
    additive();
    d2l_operators();
    sdpa();
}
