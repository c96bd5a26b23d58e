/* The golden cases of tests/data (../shared/golden/README.md), run
 * through the C API: masked softmax, additive attention with a key cache
 * (and without), d2l's dot-product, bilinear and multi-head attention,
 * Nadaraya-Watson regression, and SDPA with its masks and storage types.
 * Outputs and workspaces start as NaN, so a read of memory the call
 * should have written first shows up in the result. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "safetensors.h"
#include "simd_attention.h"

typedef struct golden {
    st_file file;
    const char *name;
} golden;

static int open_case(golden *g, const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    g->name = name;
    int ok = st_open(&g->file, path) == 0;
    if (!ok) check(0, "%s: cannot read %s", name, path);
    return ok;
}

/* A copy of tensor `name` and its description; NULL (a failed check) if absent. */
static void *tensor(golden *g, const char *name, st_tensor *t) {
    if (st_find(&g->file, name, t) != 0) {
        check(0, "%s: no readable tensor %s", g->name, name);
        return NULL;
    }
    return st_copy(t);
}

static float *nan_filled(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; p && i < n; i++) p[i] = NAN;
    return p;
}

static void expect_close(golden *g, const char *what, int rc, const float *got, const float *want, size_t n) {
    char why[128] = "";
    int ok = rc == SIMD_ATTENTION_OK && allclose(got, want, n, why, sizeof why);
    if (rc != SIMD_ATTENTION_OK) snprintf(why, sizeof why, ": status %d (%s)", rc, simd_attention_status_message(rc));
    check(ok, "%s: %s matches (%zu values)%s", g->name, what, n, why);
}

static void expect_same_bits(golden *g, const char *what, int rc, const float *got, const float *want, size_t n) {
    check(rc == SIMD_ATTENTION_OK && memcmp(got, want, n * sizeof *got) == 0, "%s: %s gives the same bits (status %d)",
          g->name, what, rc);
}

/* ---- masked softmax ---------------------------------------------------- */

static void softmax_case(const char *dir, const char *name, int extras) {
    golden g;
    if (!open_case(&g, dir, name)) return;
    st_tensor ts, tl, tw;
    float *scores = tensor(&g, "scores", &ts);
    size_t *lens = NULL;
    if (st_find(&g.file, "valid_lens", &tl) == 0) lens = st_lens(&tl);
    float *want = tensor(&g, "expected.attention_weights", &tw);
    if (!scores || !lens || !want || ts.rank != 3) goto done;
    simd_attention_score_shape shape = {ts.shape[0], ts.shape[1], ts.shape[2]};
    size_t n = ts.count, rows = shape.batch * shape.queries;
    simd_attention_mask mask = {.kind = tl.rank == 1 ? SIMD_ATTENTION_MASK_VALID_LENS
                                                     : SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY,
                                .valid_lens = lens,
                                .len = tl.count};
    float *w = malloc(n * sizeof *w);
    memcpy(w, scores, n * sizeof *w);
    int rc = simd_attention_masked_softmax(w, n, shape, &mask);
    expect_close(&g, tl.rank == 1 ? "softmax, valid_lens (B,)" : "softmax, valid_lens (B, Q)", rc, w, want, n);

    if (extras) {
        /* Causal is valid_lens (B, Q) of q + 1. */
        size_t *causal_lens = malloc(rows * sizeof *causal_lens);
        for (size_t r = 0; r < rows; r++) causal_lens[r] = r % shape.queries + 1;
        simd_attention_mask per_query = {
            .kind = SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY, .valid_lens = causal_lens, .len = rows};
        simd_attention_mask causal = {.kind = SIMD_ATTENTION_MASK_CAUSAL};
        float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
        memcpy(a, scores, n * sizeof *a);
        memcpy(b, scores, n * sizeof *b);
        int rca = simd_attention_masked_softmax(a, n, shape, &per_query);
        int rcb = simd_attention_masked_softmax(b, n, shape, &causal);
        expect_same_bits(&g, "softmax, causal against valid_lens q + 1", rca | rcb, b, a, n);

        /* No mask, an all-ones bool mask and an all-zeros float mask agree. */
        size_t per_batch = shape.queries * shape.keys;
        unsigned char *ones = malloc(per_batch);
        float *zeros = calloc(n, sizeof *zeros);
        memset(ones, 1, per_batch);
        simd_attention_mask keep = {.kind = SIMD_ATTENTION_MASK_KEEP, .keep = ones, .len = per_batch};
        simd_attention_mask add = {.kind = SIMD_ATTENTION_MASK_ADDITIVE, .additive = zeros, .len = n};
        memcpy(a, scores, n * sizeof *a);
        rca = simd_attention_masked_softmax(a, n, shape, NULL);
        memcpy(b, scores, n * sizeof *b);
        rcb = simd_attention_masked_softmax(b, n, shape, &keep);
        expect_same_bits(&g, "softmax, all-true bool mask (Q, K) against none", rca | rcb, b, a, n);
        memcpy(b, scores, n * sizeof *b);
        rcb = simd_attention_masked_softmax(b, n, shape, &add);
        expect_same_bits(&g, "softmax, zero float mask (B, Q, K) against none", rca | rcb, b, a, n);
        free(causal_lens), free(a), free(b), free(ones), free(zeros);
    }
    free(w);
done:
    free(scores), free(lens), free(want);
    st_close(&g.file);
}

/* ---- additive attention ------------------------------------------------ */

static void additive_case(const char *dir, const char *name) {
    golden g;
    if (!open_case(&g, dir, name)) return;
    st_tensor tq, tk, tv, twq, twk, twv, tl, to, tw;
    float *queries = tensor(&g, "queries", &tq), *keys = tensor(&g, "keys", &tk), *values = tensor(&g, "values", &tv);
    float *w_q = tensor(&g, "W_q.weight", &twq), *w_k = tensor(&g, "W_k.weight", &twk);
    float *w_v = tensor(&g, "w_v.weight", &twv);
    float *want_out = tensor(&g, "expected.output", &to), *want_w = tensor(&g, "expected.attention_weights", &tw);
    size_t *lens = NULL;
    int has_lens = st_find(&g.file, "valid_lens", &tl) == 0;
    if (has_lens) lens = st_lens(&tl);
    float *buffer = NULL, *out = NULL, *weights = NULL, *ws = NULL, *out2 = NULL, *out3 = NULL, *w3 = NULL;
    if (!queries || !keys || !values || !w_q || !w_k || !w_v || !want_out || !want_w) goto done;

    size_t hidden = twq.shape[0];
    simd_attention_additive_params params = {w_q, twq.count, w_k, twk.count, w_v, twv.count,
                                             hidden,  tq.shape[2], tk.shape[2]};
    simd_attention_shape shape = {tq.shape[0], tq.shape[1], tk.shape[1], tq.shape[2], tk.shape[2], tv.shape[2]};
    simd_attention_mask mask = {0};
    if (has_lens) {
        mask.kind = tl.rank == 1 ? SIMD_ATTENTION_MASK_VALID_LENS : SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY;
        mask.valid_lens = lens;
        mask.len = tl.count;
    }
    size_t cache_len = 0, ws_len = 0, ws_plain_len = 0, ws_full_len = 0;
    int rc = simd_attention_additive_key_cache_len(shape.batch, shape.keys, hidden, shape.query_dim, &cache_len);
    rc |= simd_attention_additive_cached_workspace_len(&params, shape, true, &ws_len);
    rc |= simd_attention_additive_cached_workspace_len(&params, shape, false, &ws_plain_len);
    rc |= simd_attention_additive_workspace_len(&params, shape, true, &ws_full_len);
    check(rc == SIMD_ATTENTION_OK && cache_len > 0, "%s: key cache %zu floats, workspaces %zu/%zu/%zu", name,
          cache_len, ws_len, ws_plain_len, ws_full_len);

    buffer = nan_filled(cache_len);
    simd_attention_key_cache cache = {0};
    rc = simd_attention_additive_key_cache(&params, shape, keys, tk.count, values, tv.count, buffer, cache_len, &cache);
    check(rc == SIMD_ATTENTION_OK, "%s: key cache built (status %d)", name, rc);

    out = nan_filled(to.count), weights = nan_filled(tw.count), ws = nan_filled(ws_full_len);
    rc = simd_attention_additive_forward_cached(&params, &cache, shape.queries, queries, tq.count,
                                                has_lens ? &mask : NULL, out, to.count, weights, tw.count, ws,
                                                ws_len);
    expect_close(&g, "cached output", rc, out, want_out, to.count);
    expect_close(&g, "cached weights", rc, weights, want_w, tw.count);

    out2 = nan_filled(to.count);
    for (size_t i = 0; i < ws_full_len; i++) ws[i] = NAN;
    rc = simd_attention_additive_forward_cached(&params, &cache, shape.queries, queries, tq.count,
                                                has_lens ? &mask : NULL, out2, to.count, NULL, 0, ws, ws_plain_len);
    expect_same_bits(&g, "cached output without weights", rc, out2, out, to.count);

    out3 = nan_filled(to.count), w3 = nan_filled(tw.count);
    for (size_t i = 0; i < ws_full_len; i++) ws[i] = NAN;
    simd_attention_inputs inputs = {.queries = queries, .queries_len = tq.count, .keys = keys, .keys_len = tk.count,
                                     .values = values, .values_len = tv.count};
    rc = simd_attention_additive_forward(&params, shape, inputs, has_lens ? &mask : NULL, out3, to.count, w3,
                                         tw.count, ws, ws_full_len);
    expect_same_bits(&g, "uncached output against cached", rc, out3, out, to.count);
    expect_same_bits(&g, "uncached weights against cached", rc, w3, weights, tw.count);
done:
    free(queries), free(keys), free(values), free(w_q), free(w_k), free(w_v), free(want_out), free(want_w);
    free(lens), free(buffer), free(out), free(weights), free(ws), free(out2), free(out3), free(w3);
    st_close(&g.file);
}

/* ---- dot-product, bilinear and multi-head attention, Nadaraya-Watson ---- */

/* The linear layer `name` ("W_q", ...): its `.weight` tensor, and its
 * `.bias` where the case has one (d2l's bias=True). */
static simd_attention_linear linear_of(golden *g, const char *name, float **weight, float **bias) {
    char key[32];
    st_tensor t, tb;
    snprintf(key, sizeof key, "%s.weight", name);
    *weight = tensor(g, key, &t);
    simd_attention_linear l = {*weight, *weight ? t.count : 0, NULL, 0};
    snprintf(key, sizeof key, "%s.bias", name);
    if (st_find(&g->file, key, &tb) == 0 && (*bias = st_copy(&tb)) != NULL) l.bias = *bias, l.bias_len = tb.count;
    return l;
}

/* d2l's DotProductAttention, BilinearAttention or MultiHeadAttention case
 * `name` (by its metadata `kind`), with and without the weights output. */
static void batched_case(const char *dir, const char *name) {
    golden g;
    if (!open_case(&g, dir, name)) return;
    char kind[32] = "", heads[32] = "", hiddens[32] = "";
    st_meta(&g.file, "kind", kind, sizeof kind);
    st_tensor tq, tk, tv, tl, to, tw, ta;
    float *queries = tensor(&g, "queries", &tq), *keys = tensor(&g, "keys", &tk), *values = tensor(&g, "values", &tv);
    float *want_out = tensor(&g, "expected.output", &to), *want_w = tensor(&g, "expected.attention_weights", &tw);
    float *w_a = NULL, *lin[8] = {NULL}, *out = NULL, *weights = NULL, *ws = NULL, *out2 = NULL;
    size_t *lens = NULL;
    int has_lens = st_find(&g.file, "valid_lens", &tl) == 0;
    if (has_lens) lens = st_lens(&tl);
    if (!queries || !keys || !values || !want_out || !want_w) goto done;

    simd_attention_shape shape = {tq.shape[0], tq.shape[1], tk.shape[1], tq.shape[2], tk.shape[2], tv.shape[2]};
    simd_attention_inputs inputs = {queries, tq.count, keys, tk.count, values, tv.count};
    simd_attention_mask mask = {0};
    if (has_lens) {
        mask.kind = tl.rank == 1 ? SIMD_ATTENTION_MASK_VALID_LENS : SIMD_ATTENTION_MASK_VALID_LENS_PER_QUERY;
        mask.valid_lens = lens;
        mask.len = tl.count;
    }
    const simd_attention_mask *m = has_lens ? &mask : NULL;
    out = nan_filled(to.count), weights = nan_filled(tw.count), out2 = nan_filled(to.count);
    simd_attention_mha_params mha = {0};
    if (strcmp(kind, "bilinear") == 0 && !(w_a = tensor(&g, "W_a.weight", &ta))) goto done;
    if (strcmp(kind, "mha") == 0) {
        st_meta(&g.file, "num_heads", heads, sizeof heads);
        st_meta(&g.file, "num_hiddens", hiddens, sizeof hiddens);
        mha.w_q = linear_of(&g, "W_q", &lin[0], &lin[4]);
        mha.w_k = linear_of(&g, "W_k", &lin[1], &lin[5]);
        mha.w_v = linear_of(&g, "W_v", &lin[2], &lin[6]);
        mha.w_o = linear_of(&g, "W_o", &lin[3], &lin[7]);
        mha.num_heads = (size_t)atoi(heads);
        mha.num_hiddens = (size_t)atoi(hiddens);
    }
    int rc[2];
    /* [0]: without the weights output, [1]: with it. */
    for (int with_weights = 0; with_weights <= 1; with_weights++) {
        size_t ws_len = 0;
        if (strcmp(kind, "dot") == 0)
            rc[with_weights] = simd_attention_dot_workspace_len(shape, with_weights, &ws_len);
        else if (strcmp(kind, "bilinear") == 0)
            rc[with_weights] = simd_attention_bilinear_workspace_len(w_a, ta.count, shape, with_weights, &ws_len);
        else
            rc[with_weights] = simd_attention_mha_workspace_len(&mha, shape, with_weights, &ws_len);
        check(rc[with_weights] == SIMD_ATTENTION_OK, "%s: %s workspace %zu floats %s weights (status %d)", name,
              kind, ws_len, with_weights ? "with" : "without", rc[with_weights]);
        free(ws);
        ws = nan_filled(ws_len);
        float *o = with_weights ? out : out2, *w = with_weights ? weights : NULL;
        size_t wl = with_weights ? tw.count : 0;
        if (strcmp(kind, "dot") == 0)
            rc[with_weights] = simd_attention_dot_forward(shape, inputs, m, o, to.count, w, wl, ws, ws_len);
        else if (strcmp(kind, "bilinear") == 0)
            rc[with_weights] =
                simd_attention_bilinear_forward(w_a, ta.count, shape, inputs, m, o, to.count, w, wl, ws, ws_len);
        else
            rc[with_weights] = simd_attention_mha_forward(&mha, shape, inputs, m, o, to.count, w, wl, ws, ws_len);
    }
    expect_close(&g, "output", rc[1], out, want_out, to.count);
    expect_close(&g, "weights", rc[1], weights, want_w, tw.count);
    expect_same_bits(&g, "output without weights", rc[0], out2, out, to.count);
done:
    free(queries), free(keys), free(values), free(want_out), free(want_w), free(lens), free(w_a);
    for (int i = 0; i < 8; i++) free(lin[i]);
    free(out), free(weights), free(ws), free(out2);
    st_close(&g.file);
}

static void nadaraya_watson_case(const char *dir, const char *name) {
    golden g;
    if (!open_case(&g, dir, name)) return;
    st_tensor tq, tk, tv, tw, to, tww;
    float *queries = tensor(&g, "queries", &tq), *keys = tensor(&g, "keys", &tk), *values = tensor(&g, "values", &tv);
    float *w = tensor(&g, "w", &tw);
    float *want_out = tensor(&g, "expected.output", &to), *want_w = tensor(&g, "expected.attention_weights", &tww);
    float *out = NULL, *weights = NULL;
    if (!queries || !keys || !values || !w || !want_out || !want_w) goto done;
    simd_attention_inputs inputs = {queries, tq.count, keys, tk.count, values, tv.count};
    out = nan_filled(to.count), weights = nan_filled(tww.count);
    int rc = simd_attention_nadaraya_watson(w[0], tq.count, tk.shape[1], inputs, out, to.count, weights, tww.count);
    expect_close(&g, "output", rc, out, want_out, to.count);
    expect_close(&g, "weights", rc, weights, want_w, tww.count);
done:
    free(queries), free(keys), free(values), free(w), free(want_out), free(want_w), free(out), free(weights);
    st_close(&g.file);
}

/* ---- SDPA -------------------------------------------------------------- */

enum sdpa_variant { PLAIN, WITH_WEIGHTS, BOOL_AS_FLOAT, CAUSAL_AS_LOWER_RIGHT };

static simd_attention_storage storage_of(const st_tensor *t) {
    if (!strcmp(t->dtype, "BF16")) return SIMD_ATTENTION_STORAGE_BF16;
    if (!strcmp(t->dtype, "F16")) return SIMD_ATTENTION_STORAGE_F16;
    if (!strcmp(t->dtype, "I8")) return SIMD_ATTENTION_STORAGE_Q8;
    return SIMD_ATTENTION_STORAGE_F32;
}

static void sdpa_case(const char *dir, const char *name, enum sdpa_variant variant) {
    static const char *labels[] = {"output", "output with weights", "output, bool mask as a float mask",
                                   "output, causal as lower-right (L = S)"};
    golden g;
    if (!open_case(&g, dir, name)) return;
    st_tensor tq, tk, tv, tks, tvs, tm, to;
    void *q = tensor(&g, "query", &tq), *k = tensor(&g, "key", &tk), *v = tensor(&g, "value", &tv);
    float *want = tensor(&g, "expected.output", &to);
    float *k_scales = NULL, *v_scales = NULL, *additive = NULL, *out = NULL, *weights = NULL, *ws = NULL;
    unsigned char *keep = NULL;
    char meta[64];
    if (!q || !k || !v || !want || tq.rank != 4 || tk.rank != 4 || tv.rank != 4) goto done;
    simd_attention_sdpa_shape shape = {tq.shape[0], tq.shape[1], tk.shape[1], tq.shape[2],
                                       tk.shape[2], tq.shape[3], tv.shape[3]};
    simd_attention_tensor query = {storage_of(&tq), q, tq.count, NULL, 0};
    simd_attention_tensor key = {storage_of(&tk), k, tk.count, NULL, 0};
    simd_attention_tensor value = {storage_of(&tv), v, tv.count, NULL, 0};
    if (key.storage == SIMD_ATTENTION_STORAGE_Q8) {
        k_scales = tensor(&g, "key_scale", &tks), v_scales = tensor(&g, "value_scale", &tvs);
        if (!k_scales || !v_scales) goto done;
        key.scales = k_scales, key.scales_len = tks.count;
        value.scales = v_scales, value.scales_len = tvs.count;
    }
    simd_attention_mask mask = {0};
    if (st_meta(&g.file, "mask", meta, sizeof meta) == 0 && !strcmp(meta, "bool")) {
        keep = tensor(&g, "attn_mask", &tm);
        if (!keep || tm.rank != 4) goto done;
        mask = (simd_attention_mask){.kind = SIMD_ATTENTION_MASK_KEEP, .keep = keep, .len = tm.count,
                                     .batch = tm.shape[0], .heads = tm.shape[1]};
        if (variant == BOOL_AS_FLOAT) {
            additive = malloc(tm.count * sizeof *additive);
            for (size_t i = 0; i < tm.count; i++) additive[i] = keep[i] ? 0.0f : -INFINITY;
            mask.kind = SIMD_ATTENTION_MASK_ADDITIVE, mask.additive = additive;
        }
    }
    if (st_meta(&g.file, "is_causal", meta, sizeof meta) == 0 && !strcmp(meta, "true"))
        mask.kind = variant == CAUSAL_AS_LOWER_RIGHT ? SIMD_ATTENTION_MASK_CAUSAL_LOWER_RIGHT
                                                     : SIMD_ATTENTION_MASK_CAUSAL;
    float scale = 0.0f;
    int has_scale = st_meta(&g.file, "scale", meta, sizeof meta) == 0;
    if (has_scale) scale = strtof(meta, NULL);

    int with_weights = variant == WITH_WEIGHTS;
    size_t ws_len = 0, w_len = shape.batch * shape.q_heads * shape.q_len * shape.kv_len;
    int rc = simd_attention_sdpa_workspace_len(shape, with_weights, &ws_len);
    out = nan_filled(to.count), ws = nan_filled(ws_len), weights = with_weights ? nan_filled(w_len) : NULL;
    if (rc == SIMD_ATTENTION_OK)
        rc = simd_attention_sdpa(shape, &query, &key, &value, &mask, has_scale ? &scale : NULL, out, to.count,
                                 weights, with_weights ? w_len : 0, ws, ws_len);
    expect_close(&g, labels[variant], rc, out, want, to.count);
    if (with_weights && rc == SIMD_ATTENTION_OK) {
        /* Each row of weights sums to 1, or to 0 where no key is left. */
        int ok = 1;
        for (size_t r = 0; r < w_len / shape.kv_len; r++) {
            double sum = 0;
            for (size_t j = 0; j < shape.kv_len; j++) sum += weights[r * shape.kv_len + j];
            ok &= fabs(sum - 1.0) < 1e-5 || sum == 0.0;
        }
        check(ok, "%s: every weights row sums to 1 (or 0 when fully masked)", name);
    }
done:
    free(q), free(k), free(v), free(want), free(k_scales), free(v_scales), free(keep), free(additive);
    free(out), free(weights), free(ws);
    st_close(&g.file);
}

void golden_cases(const char *dir) {
    softmax_case(dir, "masked-softmax-1d", 0);
    softmax_case(dir, "masked-softmax-2d", 1);

    static const char *additive[] = {"additive-d2l-toy", "additive-lens1d-edges", "additive-lens2d",
                                     "additive-nomask", "additive-saturated"};
    for (size_t i = 0; i < sizeof additive / sizeof *additive; i++) additive_case(dir, additive[i]);

    static const char *batched[] = {"dot-lens1d", "dot-nomask", "bilinear-lens1d", "mha-2heads", "mha-4heads-2d"};
    for (size_t i = 0; i < sizeof batched / sizeof *batched; i++) batched_case(dir, batched[i]);
    nadaraya_watson_case(dir, "nadaraya-watson");

    static const char *sdpa[] = {"sdpa-plain",        "sdpa-causal",      "sdpa-bool-mask",
                                 "sdpa-gqa-scale",    "sdpa-bf16-decode", "sdpa-bf16-all-bf16",
                                 "sdpa-f16-bool",     "sdpa-q8-decode",   "sdpa-q8-odd-dims"};
    for (size_t i = 0; i < sizeof sdpa / sizeof *sdpa; i++) sdpa_case(dir, sdpa[i], PLAIN);
    sdpa_case(dir, "sdpa-plain", WITH_WEIGHTS);
    sdpa_case(dir, "sdpa-bool-mask", WITH_WEIGHTS);
    sdpa_case(dir, "sdpa-causal", WITH_WEIGHTS);
    sdpa_case(dir, "sdpa-bool-mask", BOOL_AS_FLOAT);
    sdpa_case(dir, "sdpa-f16-bool", BOOL_AS_FLOAT);
    sdpa_case(dir, "sdpa-causal", CAUSAL_AS_LOWER_RIGHT);
}
