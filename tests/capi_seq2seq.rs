//! The C API's seq2seq decoder (feature `capi`) called from Rust: with the
//! trained model's tensors in PyTorch's layout or transposed, it gives the
//! bits of `Seq2Seq::greedy_decode` over the same slices on every backend
//! and the golden decode's tokens and weights, and each refusal gives its
//! own code and writes nothing. `tests/c/seq2seq.c` runs the golden decode
//! through the same functions from C.
#![cfg(feature = "capi")]

mod common;
use common::{Golden, backends};
use core::ffi::c_int;
use core::ptr::{null, null_mut};
use simd_attention::capi::simd_attention_status::{self, *};
use simd_attention::capi::*;
use simd_attention::io::TensorFile;
use simd_attention::models::{DecodeOptions, GruLayer, Seq2Seq, Weight, transpose};
use simd_attention::ops::AdditiveAttention;
use simd_attention::simd::with_backend;

/// A value no decode writes: a buffer still full of it was not written.
const TOKEN_SENTINEL: usize = 0xa5a5_a5a5;
const FLOAT_SENTINEL: u32 = 0x7fa5_a5a5;

/// A matrix as the file stores it (`rows × cols`, PyTorch's layout) and
/// its transpose.
struct Matrix {
    rows: Vec<f32>,
    columns: Vec<f32>,
}

impl Matrix {
    fn load(file: &TensorFile, name: &str) -> Matrix {
        let t = file.f32s(name).unwrap();
        let (out, inp) = (t.shape[0], t.shape[1]);
        let mut columns = vec![0.0; t.data.len()];
        transpose(&t.data, out, inp, &mut columns).unwrap();
        Matrix { rows: t.data, columns }
    }

    fn values(&self, layout: simd_attention_layout) -> &[f32] {
        if layout == SIMD_ATTENTION_LAYOUT_COLUMNS { &self.columns } else { &self.rows }
    }

    fn weight(&self, layout: simd_attention_layout) -> Weight<'_> {
        if layout == SIMD_ATTENTION_LAYOUT_COLUMNS { Weight::Columns(&self.columns) } else { Weight::Rows(&self.rows) }
    }

    fn c(&self, layout: simd_attention_layout) -> simd_attention_weight {
        simd_attention_weight::over(self.values(layout), layout)
    }
}

/// One GRU layer's tensors.
struct Layer {
    weight_ih: Matrix,
    weight_hh: Matrix,
    bias_ih: Vec<f32>,
    bias_hh: Vec<f32>,
    input: usize,
    hidden: usize,
}

/// The demo model's tensors (`tests/data/reverse-bahdanau`), as the file
/// stores them.
struct Model {
    encoder_embedding: Vec<f32>,
    decoder_embedding: Vec<f32>,
    encoder: Vec<Layer>,
    decoder: Vec<Layer>,
    w_q: Vec<f32>,
    w_k: Vec<f32>,
    w_v: Vec<f32>,
    dense_weight: Matrix,
    dense_bias: Vec<f32>,
    hidden: usize,
    eos: usize,
}

impl Model {
    fn load() -> Model {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reverse-bahdanau.safetensors");
        let file = TensorFile::read(path.as_ref()).unwrap();
        let f32s = |name: &str| file.f32s(name).unwrap().data;
        let layer = |prefix: &str, l: usize| {
            let weight_ih = Matrix::load(&file, &format!("{prefix}weight_ih_l{l}"));
            let shape = file.f32s(&format!("{prefix}weight_ih_l{l}")).unwrap().shape;
            Layer {
                weight_hh: Matrix::load(&file, &format!("{prefix}weight_hh_l{l}")),
                bias_ih: f32s(&format!("{prefix}bias_ih_l{l}")),
                bias_hh: f32s(&format!("{prefix}bias_hh_l{l}")),
                input: shape[1],
                hidden: shape[0] / 3,
                weight_ih,
            }
        };
        let w_q = f32s("decoder.attention.W_q.weight");
        Model {
            encoder_embedding: f32s("encoder.embedding.weight"),
            decoder_embedding: f32s("decoder.embedding.weight"),
            encoder: (0..2).map(|l| layer("encoder.rnn.rnn.", l)).collect(),
            decoder: (0..2).map(|l| layer("decoder.rnn.", l)).collect(),
            hidden: (w_q.len() as f64).sqrt() as usize,
            w_q,
            w_k: f32s("decoder.attention.W_k.weight"),
            w_v: f32s("decoder.attention.w_v.weight"),
            dense_weight: Matrix::load(&file, "decoder.dense.weight"),
            dense_bias: f32s("decoder.dense.bias"),
            eos: file.metadata("eos").unwrap().parse().unwrap(),
        }
    }

    fn c_layers(layers: &[Layer], layout: simd_attention_layout) -> Vec<simd_attention_gru_layer> {
        layers
            .iter()
            .map(|l| simd_attention_gru_layer {
                weight_ih: l.weight_ih.c(layout),
                weight_hh: l.weight_hh.c(layout),
                bias_ih: l.bias_ih.as_ptr(),
                bias_ih_len: l.bias_ih.len(),
                bias_hh: l.bias_hh.as_ptr(),
                bias_hh_len: l.bias_hh.len(),
                input: l.input,
                hidden: l.hidden,
            })
            .collect()
    }

    /// The C descriptor over the model's tensors; `layers` holds the two
    /// layer arrays it points to.
    fn c_params(
        &self,
        layout: simd_attention_layout,
        layers: &(Vec<simd_attention_gru_layer>, Vec<simd_attention_gru_layer>),
    ) -> simd_attention_seq2seq_params {
        let h = self.hidden;
        simd_attention_seq2seq_params {
            encoder_embedding: self.encoder_embedding.as_ptr(),
            encoder_embedding_len: self.encoder_embedding.len(),
            encoder_layers: layers.0.as_ptr(),
            decoder_embedding: self.decoder_embedding.as_ptr(),
            decoder_embedding_len: self.decoder_embedding.len(),
            decoder_layers: layers.1.as_ptr(),
            num_layers: layers.0.len(),
            attention: simd_attention_additive_params::over(&self.w_q, &self.w_k, &self.w_v, h, h, h),
            dense_weight: self.dense_weight.c(layout),
            dense_bias: self.dense_bias.as_ptr(),
            dense_bias_len: self.dense_bias.len(),
        }
    }

    fn layer_arrays(
        &self,
        layout: simd_attention_layout,
    ) -> (Vec<simd_attention_gru_layer>, Vec<simd_attention_gru_layer>) {
        (Self::c_layers(&self.encoder, layout), Self::c_layers(&self.decoder, layout))
    }

    /// `Seq2Seq::greedy_decode` over the same slices: tokens and weights.
    fn rust_decode(
        &self,
        layout: simd_attention_layout,
        src: &Sources,
        options: DecodeOptions,
    ) -> (Vec<usize>, Vec<f32>) {
        let (encoder, decoder) = (gru_layers(&self.encoder, layout), gru_layers(&self.decoder, layout));
        let h = self.hidden;
        let model = Seq2Seq {
            encoder_embedding: &self.encoder_embedding,
            encoder: &encoder,
            decoder_embedding: &self.decoder_embedding,
            decoder: &decoder,
            attention: AdditiveAttention::new(&self.w_q, &self.w_k, &self.w_v, h, h, h).unwrap(),
            dense_weight: self.dense_weight.weight(layout),
            dense_bias: &self.dense_bias,
        };
        let steps = options.num_steps;
        let (mut tokens, mut weights) = (vec![0; src.batch * steps], vec![0.0; src.batch * steps * src.src_len]);
        let mut ws = vec![0.0; model.workspace_len(src.batch, src.src_len).unwrap()];
        model
            .greedy_decode(
                src.batch,
                src.src_len,
                &src.tokens,
                &src.lens,
                options,
                &mut tokens,
                Some(&mut weights),
                &mut ws,
            )
            .unwrap();
        (tokens, weights)
    }
}

/// The core's layers over `layers`' tensors in `layout`.
fn gru_layers(layers: &[Layer], layout: simd_attention_layout) -> Vec<GruLayer<'_>> {
    let mut built = Vec::new();
    for l in layers {
        let (w_ih, w_hh) = (l.weight_ih.weight(layout), l.weight_hh.weight(layout));
        built.push(GruLayer::new(w_ih, w_hh, &l.bias_ih, &l.bias_hh, l.input, l.hidden).unwrap());
    }
    built
}

/// The golden case's sources and options.
struct Sources {
    tokens: Vec<usize>,
    lens: Vec<usize>,
    batch: usize,
    src_len: usize,
    steps: usize,
    bos: usize,
}

impl Sources {
    fn golden(g: &Golden) -> Sources {
        let shape = g.shape("src");
        Sources {
            tokens: g.lens("src"),
            lens: g.lens("src_valid_lens"),
            batch: shape[0],
            src_len: shape[1],
            steps: g.meta("num_steps").unwrap().parse().unwrap(),
            bos: g.meta("bos").unwrap().parse().unwrap(),
        }
    }

    fn c(&self) -> simd_attention_sources {
        simd_attention_sources::over(&self.tokens, &self.lens, self.batch, self.src_len)
    }
}

/// The arguments of `simd_attention_seq2seq_greedy_decode`, passed on by
/// [`call`](Decode::call); a bad-argument case is the valid call with one
/// field changed.
#[derive(Clone, Copy)]
struct Decode {
    params: *const simd_attention_seq2seq_params,
    sources: simd_attention_sources,
    options: simd_attention_decode_options,
    tokens: (*mut usize, usize),
    weights: (*mut f32, usize),
    workspace: (*mut f32, usize),
}

impl Decode {
    fn call(self) -> c_int {
        // SAFETY: every test passes live buffers of the lengths it states,
        // or pointers the entry point must refuse before reading them.
        unsafe {
            simd_attention_seq2seq_greedy_decode(
                self.params,
                self.sources,
                self.options,
                self.tokens.0,
                self.tokens.1,
                self.weights.0,
                self.weights.1,
                self.workspace.0,
                self.workspace.1,
            )
        }
    }
}

fn workspace_len(params: &simd_attention_seq2seq_params, batch: usize, src_len: usize) -> usize {
    let mut len = 0;
    // SAFETY: live descriptors and one size_t.
    let rc = unsafe { simd_attention_seq2seq_workspace_len(params, batch, src_len, &mut len) };
    assert_eq!(rc, SIMD_ATTENTION_OK.code());
    len
}

/// The C decode of `src`: tokens, and weights when requested.
fn c_decode(
    params: &simd_attention_seq2seq_params,
    src: &Sources,
    options: simd_attention_decode_options,
    with_weights: bool,
) -> (Vec<usize>, Vec<f32>) {
    let mut tokens = vec![TOKEN_SENTINEL; src.batch * options.num_steps];
    let mut weights = vec![f32::from_bits(FLOAT_SENTINEL); src.batch * options.num_steps * src.src_len];
    let mut ws = vec![f32::NAN; workspace_len(params, src.batch, src.src_len)];
    let weights_arg = if with_weights { (weights.as_mut_ptr(), weights.len()) } else { (null_mut(), 0) };
    let rc = Decode {
        params,
        sources: src.c(),
        options,
        tokens: (tokens.as_mut_ptr(), tokens.len()),
        weights: weights_arg,
        workspace: (ws.as_mut_ptr(), ws.len()),
    }
    .call();
    assert_eq!(rc, SIMD_ATTENTION_OK.code(), "decode refused");
    (tokens, weights)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn c_decode_gives_the_rust_bits_in_both_layouts_on_every_backend() {
    let model = Model::load();
    let src = Sources::golden(&Golden::load("seq2seq-reverse-decode"));
    for layout in [SIMD_ATTENTION_LAYOUT_ROWS, SIMD_ATTENTION_LAYOUT_COLUMNS] {
        let layers = model.layer_arrays(layout);
        let params = model.c_params(layout, &layers);
        for stop_at_eos in [0, 1] {
            let options =
                simd_attention_decode_options { num_steps: src.steps, bos: src.bos, eos: model.eos, stop_at_eos };
            for backend in backends() {
                let (want_tokens, want_weights) =
                    with_backend(backend, || model.rust_decode(layout, &src, options.into())).unwrap();
                let (tokens, weights) = with_backend(backend, || c_decode(&params, &src, options, true)).unwrap();
                let what = format!("layout {layout}, stop_at_eos {stop_at_eos}, {backend:?}");
                assert_eq!(tokens, want_tokens, "{what}: tokens");
                assert_eq!(bits(&weights), bits(&want_weights), "{what}: weights");
                let (alone, untouched) = with_backend(backend, || c_decode(&params, &src, options, false)).unwrap();
                assert_eq!(alone, want_tokens, "{what}: tokens without weights");
                assert!(untouched.iter().all(|w| w.to_bits() == FLOAT_SENTINEL), "{what}: weights not requested");
            }
        }
    }
}

#[test]
fn c_decode_matches_pytorchs_greedy_decode() {
    let model = Model::load();
    let g = Golden::load("seq2seq-reverse-decode");
    let src = Sources::golden(&g);
    let (want_tokens, want_weights) = (g.lens("expected.tokens"), g.f32s("expected.attention_weights"));
    let layers = model.layer_arrays(SIMD_ATTENTION_LAYOUT_ROWS);
    let params = model.c_params(SIMD_ATTENTION_LAYOUT_ROWS, &layers);
    let options = simd_attention_decode_options { num_steps: src.steps, bos: src.bos, eos: model.eos, stop_at_eos: 0 };
    let (tokens, weights) = c_decode(&params, &src, options, true);
    let steps = src.steps;
    for b in 0..src.batch {
        let want = &want_tokens[b * steps..(b + 1) * steps];
        // Tokens up to and including the first <eos> (past it the
        // argmax of a model that has finished is of no interest).
        let end = want.iter().position(|&t| t == model.eos).map_or(steps, |p| p + 1);
        assert_eq!(&tokens[b * steps..b * steps + end], &want[..end], "sequence {b}");
        let rows = (b * steps) * src.src_len..(b * steps + end) * src.src_len;
        for (i, (&got, &want)) in weights[rows.clone()].iter().zip(&want_weights[rows]).enumerate() {
            assert!((got - want).abs() <= 5e-5, "sequence {b}, weight {i}: {got} against {want}");
        }
    }
}

/// `rc` is `want`, and tokens, weights and workspace still hold their
/// sentinels.
#[track_caller]
fn refused(what: &str, rc: c_int, want: simd_attention_status, outputs: (&[usize], &[f32], &[f32])) {
    assert_eq!(rc, want.code(), "{what}: got {rc}, want {want:?}");
    assert!(outputs.0.iter().all(|&t| t == TOKEN_SENTINEL), "{what}: tokens written by a refused call");
    for (name, v) in [("weights", outputs.1), ("workspace", outputs.2)] {
        assert!(v.iter().all(|x| x.to_bits() == FLOAT_SENTINEL), "{what}: {name} written by a refused call");
    }
}

#[test]
fn c_decode_refuses_bad_arguments_and_writes_nothing() {
    let model = Model::load();
    let src = Sources::golden(&Golden::load("seq2seq-reverse-decode"));
    let layers = model.layer_arrays(SIMD_ATTENTION_LAYOUT_ROWS);
    let params = model.c_params(SIMD_ATTENTION_LAYOUT_ROWS, &layers);
    let options = simd_attention_decode_options { num_steps: src.steps, bos: src.bos, eos: model.eos, stop_at_eos: 0 };
    let ws_len = workspace_len(&params, src.batch, src.src_len);
    let mut tokens = vec![TOKEN_SENTINEL; src.batch * src.steps + 1];
    let mut weights = vec![f32::from_bits(FLOAT_SENTINEL); src.batch * src.steps * src.src_len + 1];
    let mut ws = vec![f32::from_bits(FLOAT_SENTINEL); ws_len + 1];
    let (n_tokens, n_weights) = (tokens.len() - 1, weights.len() - 1);
    let ok = Decode {
        params: &params,
        sources: src.c(),
        options,
        tokens: (tokens.as_mut_ptr(), n_tokens),
        weights: (weights.as_mut_ptr(), n_weights),
        workspace: (ws.as_mut_ptr(), ws_len),
    };
    let with = |p: simd_attention_seq2seq_params| p;
    let too_many = with(simd_attention_seq2seq_params { num_layers: SIMD_ATTENTION_SEQ2SEQ_MAX_LAYERS + 1, ..params });
    let no_layers = with(simd_attention_seq2seq_params { num_layers: 0, ..params });
    let odd_layout = with(simd_attention_seq2seq_params {
        dense_weight: simd_attention_weight { layout: 2, ..params.dense_weight },
        ..params
    });
    let short_bias = with(simd_attention_seq2seq_params { dense_bias_len: params.dense_bias_len - 1, ..params });
    let mut wide_layers = model.layer_arrays(SIMD_ATTENTION_LAYOUT_ROWS);
    wide_layers.1[1].hidden += 1;
    let wide = model.c_params(SIMD_ATTENTION_LAYOUT_ROWS, &wide_layers);
    let mut bad_src = src.tokens.clone();
    bad_src[3] = model.dense_bias.len();
    let bad_sources = simd_attention_sources { tokens: bad_src.as_ptr(), ..src.c() };
    let misaligned = tokens.as_mut_ptr().cast::<u8>().wrapping_add(1).cast::<usize>();
    let cases: Vec<(&str, Decode, simd_attention_status)> = vec![
        ("params NULL", Decode { params: null(), ..ok }, SIMD_ATTENTION_ERROR_NULL),
        ("9 layers", Decode { params: &too_many, ..ok }, SIMD_ATTENTION_ERROR_VALUE),
        ("no layers", Decode { params: &no_layers, ..ok }, SIMD_ATTENTION_ERROR_DIMENSION),
        ("layout 2", Decode { params: &odd_layout, ..ok }, SIMD_ATTENTION_ERROR_KIND),
        ("dense bias one short", Decode { params: &short_bias, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("a decoder layer one wider", Decode { params: &wide, ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("a source token past the vocabulary", Decode { sources: bad_sources, ..ok }, SIMD_ATTENTION_ERROR_VALUE),
        (
            "bos past the vocabulary",
            Decode { options: simd_attention_decode_options { bos: 99, ..options }, ..ok },
            SIMD_ATTENTION_ERROR_VALUE,
        ),
        (
            "source tokens NULL with a length",
            Decode { sources: simd_attention_sources { tokens: null(), ..src.c() }, ..ok },
            SIMD_ATTENTION_ERROR_NULL,
        ),
        (
            "valid lengths one short",
            Decode { sources: simd_attention_sources { valid_lens_len: src.batch - 1, ..src.c() }, ..ok },
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        (
            "batch × src_len overflows",
            Decode { sources: simd_attention_sources { batch: usize::MAX, ..src.c() }, ..ok },
            SIMD_ATTENTION_ERROR_OVERFLOW,
        ),
        ("tokens one short", Decode { tokens: (tokens.as_mut_ptr(), n_tokens - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        ("tokens misaligned", Decode { tokens: (misaligned, n_tokens), ..ok }, SIMD_ATTENTION_ERROR_ALIGNMENT),
        (
            "weights one long",
            Decode { weights: (weights.as_mut_ptr(), n_weights + 1), ..ok },
            SIMD_ATTENTION_ERROR_LENGTH,
        ),
        ("workspace one short", Decode { workspace: (ws.as_mut_ptr(), ws_len - 1), ..ok }, SIMD_ATTENTION_ERROR_LENGTH),
        (
            "weights over the workspace",
            Decode { weights: (ws.as_mut_ptr(), n_weights), ..ok },
            SIMD_ATTENTION_ERROR_ALIASING,
        ),
        (
            "workspace over the dense bias",
            Decode { workspace: (params.dense_bias.cast_mut(), params.dense_bias_len), ..ok },
            SIMD_ATTENTION_ERROR_ALIASING,
        ),
        (
            "tokens over the source tokens",
            Decode { tokens: (src.tokens.as_ptr().cast_mut(), n_tokens), ..ok },
            SIMD_ATTENTION_ERROR_ALIASING,
        ),
    ];
    for (what, call, want) in cases {
        let rc = call.call();
        refused(what, rc, want, (&tokens, &weights, &ws));
    }
    let mut len = 12345;
    // SAFETY: live descriptors; NULL and a short-lived size_t.
    unsafe {
        let rc = simd_attention_seq2seq_workspace_len(&params, 1, 10, null_mut());
        assert_eq!(rc, SIMD_ATTENTION_ERROR_NULL.code(), "workspace len, len NULL");
        let rc = simd_attention_seq2seq_workspace_len(&too_many, 1, 10, &mut len);
        assert_eq!((rc, len), (SIMD_ATTENTION_ERROR_VALUE.code(), 12345), "workspace len, 9 layers");
        let rc = simd_attention_seq2seq_workspace_len(&params, usize::MAX, 10, &mut len);
        assert_eq!((rc, len), (SIMD_ATTENTION_ERROR_OVERFLOW.code(), 12345), "workspace len, batch usize::MAX");
    }
    assert_eq!(ok.call(), SIMD_ATTENTION_OK.code(), "the valid call");
}
