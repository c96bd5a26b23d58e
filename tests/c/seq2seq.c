/* d2l's Bahdanau seq2seq through the C API: the trained demo model
 * (tests/data/reverse-bahdanau) loaded tensor by tensor, then PyTorch's
 * greedy decode (tests/data/seq2seq-reverse-decode) reproduced: tokens up
 * to and including the first <eos> exactly, attention weights within
 * 5e-5; the same tokens with the weights not requested, with an early
 * stop, and with the matrices transposed; and two refusals that write
 * nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "safetensors.h"
#include "simd_attention.h"

#define LAYERS 2

typedef struct model {
    st_file file;
    float *tensors[64];
    size_t count;
    simd_attention_gru_layer encoder[LAYERS], decoder[LAYERS];
    simd_attention_seq2seq_params params;
    size_t eos;
    int ok;
} model;

/* A copy of tensor `name` (freed with the model); `*len` gets its count
 * and `*rows`, `*cols` its first two dimensions. */
static float *load(model *m, const char *name, size_t *len, size_t *rows, size_t *cols) {
    st_tensor t;
    if (st_find(&m->file, name, &t) != 0 || m->count == sizeof m->tensors / sizeof *m->tensors) {
        check(0, "seq2seq: no readable tensor %s", name);
        m->ok = 0;
        return NULL;
    }
    float *p = st_copy(&t);
    m->tensors[m->count++] = p;
    *len = t.count;
    if (rows) *rows = t.shape[0];
    if (cols) *cols = t.rank > 1 ? t.shape[1] : 1;
    return p;
}

/* The `row × col` matrix `w` transposed, in a new buffer freed with the model. */
static float *transposed(model *m, const float *w, size_t rows, size_t cols) {
    size_t n = rows * cols;
    float *t = malloc((n > 0 ? n : 1) * sizeof *t);
    for (size_t r = 0; t && r < rows; r++)
        for (size_t c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
    m->tensors[m->count++] = t;
    return t;
}

static simd_attention_weight weight(model *m, const char *name, simd_attention_layout layout) {
    size_t len = 0, rows = 0, cols = 0;
    float *w = load(m, name, &len, &rows, &cols);
    if (w && layout == SIMD_ATTENTION_LAYOUT_COLUMNS) w = transposed(m, w, rows, cols);
    return (simd_attention_weight){.data = w, .len = len, .layout = layout};
}

static void gru_layer(model *m, const char *prefix, size_t l, simd_attention_layout layout,
                      simd_attention_gru_layer *layer) {
    char name[96];
    size_t rows = 0, cols = 0, len = 0;
    st_tensor t;
    snprintf(name, sizeof name, "%sweight_ih_l%zu", prefix, l);
    if (st_find(&m->file, name, &t) == 0) rows = t.shape[0], cols = t.shape[1];
    layer->weight_ih = weight(m, name, layout);
    snprintf(name, sizeof name, "%sweight_hh_l%zu", prefix, l);
    layer->weight_hh = weight(m, name, layout);
    snprintf(name, sizeof name, "%sbias_ih_l%zu", prefix, l);
    layer->bias_ih = load(m, name, &len, NULL, NULL), layer->bias_ih_len = len;
    snprintf(name, sizeof name, "%sbias_hh_l%zu", prefix, l);
    layer->bias_hh = load(m, name, &len, NULL, NULL), layer->bias_hh_len = len;
    layer->input = cols, layer->hidden = rows / 3;
}

/* The model in `dir`, its matrices in `layout`; m->ok says whether it loaded. */
static void open_model(model *m, const char *dir, simd_attention_layout layout) {
    char path[1024], eos[32] = "";
    memset(m, 0, sizeof *m);
    m->ok = 1;
    snprintf(path, sizeof path, "%s/reverse-bahdanau.safetensors", dir);
    if (st_open(&m->file, path) != 0) {
        check(0, "seq2seq: cannot read %s", path);
        m->ok = 0;
        return;
    }
    st_meta(&m->file, "eos", eos, sizeof eos);
    m->eos = (size_t)strtoul(eos, NULL, 10);
    for (size_t l = 0; l < LAYERS; l++) {
        gru_layer(m, "encoder.rnn.rnn.", l, layout, &m->encoder[l]);
        gru_layer(m, "decoder.rnn.", l, layout, &m->decoder[l]);
    }
    simd_attention_seq2seq_params *p = &m->params;
    size_t hidden = m->encoder[0].hidden, len = 0;
    p->encoder_embedding = load(m, "encoder.embedding.weight", &len, NULL, NULL), p->encoder_embedding_len = len;
    p->decoder_embedding = load(m, "decoder.embedding.weight", &len, NULL, NULL), p->decoder_embedding_len = len;
    p->encoder_layers = m->encoder, p->decoder_layers = m->decoder, p->num_layers = LAYERS;
    p->attention.w_q = load(m, "decoder.attention.W_q.weight", &len, NULL, NULL), p->attention.w_q_len = len;
    p->attention.w_k = load(m, "decoder.attention.W_k.weight", &len, NULL, NULL), p->attention.w_k_len = len;
    p->attention.w_v = load(m, "decoder.attention.w_v.weight", &len, NULL, NULL), p->attention.w_v_len = len;
    p->attention.hidden = p->attention.query_dim = p->attention.key_dim = hidden;
    p->dense_weight = weight(m, "decoder.dense.weight", layout);
    p->dense_bias = load(m, "decoder.dense.bias", &len, NULL, NULL), p->dense_bias_len = len;
}

static void close_model(model *m) {
    for (size_t i = 0; i < m->count; i++) free(m->tensors[i]);
    st_close(&m->file);
}

/* Tokens of sequence `b` up to and including its first `eos` in `want`. */
static size_t until_eos(const size_t *want, size_t steps, size_t eos) {
    for (size_t s = 0; s < steps; s++)
        if (want[s] == eos) return s + 1;
    return steps;
}

void seq2seq_decode(const char *dir) {
    model rows, columns;
    open_model(&rows, dir, SIMD_ATTENTION_LAYOUT_ROWS);
    open_model(&columns, dir, SIMD_ATTENTION_LAYOUT_COLUMNS);
    st_file golden;
    char path[1024], meta[32] = "";
    snprintf(path, sizeof path, "%s/seq2seq-reverse-decode.safetensors", dir);
    int have_golden = st_open(&golden, path) == 0;
    check(have_golden, "seq2seq: golden decode %s read", path);
    st_tensor ts, tl, tt, tw;
    size_t *src = NULL, *lens = NULL, *want_tokens = NULL, *tokens = NULL;
    float *want_weights = NULL, *weights = NULL, *ws = NULL;
    if (!rows.ok || !columns.ok || !have_golden) goto done;
    if (st_find(&golden, "src", &ts) || st_find(&golden, "src_valid_lens", &tl) ||
        st_find(&golden, "expected.tokens", &tt) || st_find(&golden, "expected.attention_weights", &tw)) {
        check(0, "seq2seq: the golden decode lacks a tensor");
        goto done;
    }
    src = st_lens(&ts), lens = st_lens(&tl), want_tokens = st_lens(&tt), want_weights = st_copy(&tw);
    size_t batch = ts.shape[0], src_len = ts.shape[1];
    simd_attention_decode_options options = {.eos = rows.eos};
    st_meta(&golden, "num_steps", meta, sizeof meta), options.num_steps = (size_t)strtoul(meta, NULL, 10);
    st_meta(&golden, "bos", meta, sizeof meta), options.bos = (size_t)strtoul(meta, NULL, 10);
    size_t steps = options.num_steps, n_tokens = batch * steps, n_weights = n_tokens * src_len, ws_len = 0;
    simd_attention_sources sources = {.tokens = src, .tokens_len = ts.count, .valid_lens = lens,
                                      .valid_lens_len = tl.count, .batch = batch, .src_len = src_len};

    int rc = simd_attention_seq2seq_workspace_len(&rows.params, batch, src_len, &ws_len);
    check(rc == SIMD_ATTENTION_OK && ws_len > 0, "seq2seq: workspace of %zu floats for %zu sources (status %d)",
          ws_len, batch, rc);
    tokens = malloc(n_tokens * sizeof *tokens), weights = malloc(n_weights * sizeof *weights);
    ws = malloc(ws_len * sizeof *ws);
    if (rc != SIMD_ATTENTION_OK || !tokens || !weights || !ws) goto done;
    for (size_t i = 0; i < n_weights; i++) weights[i] = NAN;
    for (size_t i = 0; i < ws_len; i++) ws[i] = NAN;

    rc = simd_attention_seq2seq_greedy_decode(&rows.params, sources, options, tokens, n_tokens, weights, n_weights,
                                              ws, ws_len);
    int same = rc == SIMD_ATTENTION_OK;
    double worst = 0;
    for (size_t b = 0; same && b < batch; b++) {
        size_t end = until_eos(&want_tokens[b * steps], steps, rows.eos);
        same &= memcmp(&tokens[b * steps], &want_tokens[b * steps], end * sizeof *tokens) == 0;
        for (size_t i = b * steps * src_len; i < (b * steps + end) * src_len; i++) {
            double e = fabs((double)weights[i] - want_weights[i]);
            worst = e > worst || isnan(e) ? e : worst;
        }
    }
    check(same && worst <= 5e-5, "seq2seq: %zu greedy decodes give PyTorch's tokens, weights within %.1e (status %d)",
          batch, worst, rc);

    /* The weights not requested, and an early stop at <eos>. */
    size_t *stopped = malloc(n_tokens * sizeof *stopped);
    simd_attention_decode_options early = options;
    early.stop_at_eos = 1;
    rc = stopped ? simd_attention_seq2seq_greedy_decode(&rows.params, sources, early, stopped, n_tokens, NULL, 0, ws,
                                                        ws_len)
                 : -1;
    same = rc == SIMD_ATTENTION_OK;
    for (size_t b = 0; same && b < batch; b++) {
        size_t end = until_eos(&tokens[b * steps], steps, rows.eos);
        same &= memcmp(&stopped[b * steps], &tokens[b * steps], end * sizeof *tokens) == 0;
        for (size_t s = end; s < steps; s++) same &= stopped[b * steps + s] == rows.eos;
    }
    check(same, "seq2seq: without weights and stopping at <eos>, the same tokens, then <eos> (status %d)", rc);

    /* Every matrix transposed (SIMD_ATTENTION_LAYOUT_COLUMNS). */
    rc = stopped ? simd_attention_seq2seq_greedy_decode(&columns.params, sources, options, stopped, n_tokens, NULL, 0,
                                                        ws, ws_len)
                 : -1;
    same = rc == SIMD_ATTENTION_OK;
    for (size_t b = 0; same && b < batch; b++) {
        size_t end = until_eos(&tokens[b * steps], steps, rows.eos);
        same &= memcmp(&stopped[b * steps], &tokens[b * steps], end * sizeof *tokens) == 0;
    }
    check(same, "seq2seq: the transposed matrices give the same tokens (status %d)", rc);

    /* Refusals write nothing. */
    for (size_t i = 0; i < n_tokens && stopped; i++) stopped[i] = 12345;
    simd_attention_seq2seq_params nine = rows.params;
    nine.num_layers = 9;
    rc = stopped ? simd_attention_seq2seq_greedy_decode(&nine, sources, options, stopped, n_tokens, NULL, 0, ws, ws_len)
                 : -1;
    int clean = stopped != NULL;
    for (size_t i = 0; clean && i < n_tokens; i++) clean &= stopped[i] == 12345;
    check(rc == SIMD_ATTENTION_ERROR_VALUE && clean, "seq2seq: 9 layers -> ERROR_VALUE, nothing written (got %d)",
          rc);
    rc = stopped ? simd_attention_seq2seq_greedy_decode(&rows.params, sources, options, stopped, n_tokens,
                                                        (float *)rows.params.dense_bias, rows.params.dense_bias_len,
                                                        ws, ws_len)
                 : -1;
    for (size_t i = 0; clean && i < n_tokens; i++) clean &= stopped[i] == 12345;
    check(rc == SIMD_ATTENTION_ERROR_ALIASING && clean,
          "seq2seq: weights over the dense bias -> ERROR_ALIASING, nothing written (got %d)", rc);
    free(stopped);
done:
    free(src), free(lens), free(want_tokens), free(want_weights), free(tokens), free(weights), free(ws);
    if (have_golden) st_close(&golden);
    close_model(&rows), close_model(&columns);
}
