//! `Seq2Seq`: a trained d2l Bahdanau seq2seq loaded from safetensors
//! (the crate's `io::seq2seq`), decoded greedily by the crate's
//! `models::Seq2Seq` with the GIL released.

use crate::arrays::{filled, indices, new_array, shape_text};
use crate::errors::{repr, size, to_py, type_error, value_error};
use engine::io::{LoadError, TensorFile, seq2seq::Seq2SeqModel};
use engine::models::DecodeOptions;
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;
use std::path::PathBuf;

/// A loading or decoding refusal as a Python exception: `OSError` for a
/// file that cannot be read, the engine's mapping for an operator's
/// refusal, `ValueError` with the loader's message otherwise.
fn load_error(error: LoadError) -> PyErr {
    match error {
        LoadError::Io { .. } => PyOSError::new_err(error.to_string()),
        LoadError::Op(e) => to_py(e),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// A source the model cannot read, as a `ValueError` naming `arg` (the
/// argument the tokens came in).
fn source_error(arg: &str, error: LoadError) -> PyErr {
    match error {
        LoadError::Source(problem) => PyValueError::new_err(format!("`{arg}`: {problem}")),
        other => load_error(other),
    }
}

/// `obj` as token strings: a sequence of `str` (a `str` itself, which
/// Python would iterate as characters, is refused), or a `TypeError`
/// naming `arg`.
fn tokens(arg: &str, obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.is_instance_of::<PyString>() {
        return Err(type_error(arg, "a sequence of str (one per token)", repr(obj)));
    }
    obj.extract::<Vec<String>>().map_err(|_| type_error(arg, "a sequence of str", repr(obj)))
}

/// d2l's Bahdanau seq2seq (a GRU encoder and a GRU decoder whose query
/// attends to the encoder's outputs with additive attention), trained in
/// PyTorch and saved as safetensors under its `state_dict` names, with its
/// vocabulary in the metadata (`vocab`, `bos`, `eos`, `pad`,
/// `num_steps`), as `tests/data/reverse-bahdanau.safetensors` is.
#[pyclass(frozen, module = "simd_attention")]
pub struct Seq2Seq {
    model: Seq2SeqModel,
}

impl Seq2Seq {
    /// `Seq2Seq::greedy_decode` over buffers allocated here, fallibly (a
    /// `MemoryError` for a decode too long for memory, where the crate's
    /// allocating `decode` would abort the interpreter), with the GIL
    /// released: `(tokens, weights)`.
    fn decode(
        &self,
        py: Python<'_>,
        (batch, src_len): (usize, usize),
        src: &[usize],
        lens: &[usize],
        options: DecodeOptions,
    ) -> PyResult<(Vec<usize>, Vec<f32>)> {
        let steps = batch.checked_mul(options.num_steps);
        let mut tokens = filled("tokens", steps.unwrap_or(usize::MAX), 0)?;
        let weights_len = steps.and_then(|n| n.checked_mul(src_len)).unwrap_or(usize::MAX);
        let mut weights = filled("attention_weights", weights_len, 0.0)?;
        let ws_len = self.model.with_view(|m| Ok(m.workspace_len(batch, src_len)?)).map_err(load_error)?;
        let mut ws = filled("workspace", ws_len, 0.0)?;
        py.detach(|| {
            self.model.with_view(|m| {
                let weights = Some(&mut weights[..]);
                Ok(m.greedy_decode(batch, src_len, src, lens, options, &mut tokens, weights, &mut ws)?)
            })
        })
        .map_err(load_error)?;
        Ok((tokens, weights))
    }
}

#[pymethods]
impl Seq2Seq {
    /// Loads the model at `path` (`str` or `os.PathLike`); every tensor's
    /// shape is checked here.
    #[new]
    fn new(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Self> {
        let path: PathBuf = path.extract().map_err(|_| type_error("path", "a str or os.PathLike", repr(path)))?;
        let model = py.detach(|| TensorFile::read(&path).and_then(|file| Seq2SeqModel::load(&file)));
        Ok(Seq2Seq { model: model.map_err(load_error)? })
    }

    /// Token strings by id.
    #[getter]
    fn vocab(&self) -> Vec<String> {
        self.model.vocab.clone()
    }

    /// The id of `<bos>`, the decoder's first input.
    #[getter]
    fn bos(&self) -> usize {
        self.model.bos
    }

    /// The id of `<eos>`.
    #[getter]
    fn eos(&self) -> usize {
        self.model.eos
    }

    /// The id of `<pad>`.
    #[getter]
    fn pad(&self) -> usize {
        self.model.pad
    }

    /// The source length the model was trained with, and the default
    /// number of decoding steps.
    #[getter]
    fn num_steps(&self) -> usize {
        self.model.num_steps
    }

    /// `tokens` (strings of the vocabulary) as the model reads a source:
    /// `(ids, valid_len)`, with `ids` `(num_steps,)` int64 holding the
    /// tokens' ids, `<eos>`, then `<pad>`.
    #[pyo3(name = "source")]
    fn encode<'py>(&self, py: Python<'py>, tokens: &Bound<'py, PyAny>) -> PyResult<(Bound<'py, PyAny>, usize)> {
        let tokens = self::tokens("tokens", tokens)?;
        let source = self.model.source(&tokens).map_err(|e| source_error("tokens", e))?;
        let ids = source.ids.iter().map(|&id| id as i64).collect();
        Ok((new_array(py, "ids", &[source.ids.len()], ids)?, source.valid_len))
    }

    /// Decoded `ids` as token strings, up to (not including) the first
    /// `<eos>`.
    fn words(&self, ids: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let (ids, shape) = indices("ids", ids)?;
        if shape.len() != 1 {
            return Err(value_error("ids", "1 dimension", shape_text(&shape)));
        }
        Ok(self.model.words(&ids).into_iter().map(str::to_owned).collect())
    }

    /// Greedy decoding, as d2l's `predict_step`: `src` `(B, T)` token ids
    /// (integers) with `src_valid_lens` `(B,)`; the encoder reads every
    /// source position, then each of `num_steps` steps (default the
    /// model's) feeds the decoder its previous token (first `bos`, default
    /// `<bos>`). With `stop_at` a sequence that emits that id keeps
    /// emitting it, with zero weights (d2l runs every step). Returns
    /// `tokens` `(B, num_steps)` int64 and `attention_weights` `(B,
    /// num_steps, T)` float32. One thread; the GIL is released.
    #[pyo3(signature = (src, src_valid_lens, num_steps=None, bos=None, stop_at=None))]
    fn greedy_decode<'py>(
        &self,
        py: Python<'py>,
        src: &Bound<'py, PyAny>,
        src_valid_lens: &Bound<'py, PyAny>,
        num_steps: Option<&Bound<'py, PyAny>>,
        bos: Option<&Bound<'py, PyAny>>,
        stop_at: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyAny>)> {
        let (src, shape) = indices("src", src)?;
        let [batch, src_len] = <[usize; 2]>::try_from(&shape[..])
            .map_err(|_| value_error("src", "2 dimensions (B, T)", shape_text(&shape)))?;
        let (lens, lens_shape) = indices("src_valid_lens", src_valid_lens)?;
        if lens_shape != [batch] {
            return Err(value_error("src_valid_lens", format!("shape ({batch},)"), shape_text(&lens_shape)));
        }
        let options = DecodeOptions {
            num_steps: num_steps.map_or(Ok(self.model.num_steps), |n| size("num_steps", n))?,
            bos: bos.map_or(Ok(self.model.bos), |b| size("bos", b))?,
            stop_at: stop_at.map(|s| size("stop_at", s)).transpose()?,
        };
        let vocab = self.model.vocab.len();
        if let Some((i, id)) = src.iter().enumerate().find(|&(_, &id)| id >= vocab) {
            return Err(value_error("src", format!("token ids below {vocab}"), format!("{id} at index {i}")));
        }
        if options.bos >= vocab {
            return Err(value_error("bos", format!("a token id below {vocab}"), options.bos));
        }
        let (tokens, weights) = self.decode(py, (batch, src_len), &src, &lens, options)?;
        let steps = options.num_steps;
        let tokens = tokens.into_iter().map(|t| t as i64).collect();
        Ok((
            new_array(py, "tokens", &[batch, steps], tokens)?,
            new_array(py, "attention_weights", &[batch, steps, src_len], weights)?,
        ))
    }

    /// Each source (a sequence of token strings) decoded greedily until
    /// `<eos>` or `num_steps`, as token strings: the whole batch in one
    /// decode.
    fn translate(&self, py: Python<'_>, sources: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<String>>> {
        let m = &self.model;
        if sources.is_instance_of::<PyString>() {
            return Err(type_error("sources", "a sequence of token sequences", repr(sources)));
        }
        let list =
            sources.try_iter().map_err(|_| type_error("sources", "a sequence of token sequences", repr(sources)))?;
        let sources = list
            .enumerate()
            .map(|(i, s)| {
                let arg = format!("sources[{i}]");
                m.source(&tokens(&arg, &s?)?).map_err(|e| source_error(&arg, e))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let src: Vec<usize> = sources.iter().flat_map(|s| s.ids.iter().copied()).collect();
        let lens: Vec<usize> = sources.iter().map(|s| s.valid_len).collect();
        let options = DecodeOptions { num_steps: m.num_steps, bos: m.bos, stop_at: Some(m.eos) };
        let (tokens, _) = self.decode(py, (sources.len(), m.num_steps), &src, &lens, options)?;
        let rows = tokens.chunks(m.num_steps.max(1)).take(sources.len());
        Ok(rows.map(|ids| m.words(ids).into_iter().map(str::to_owned).collect()).collect())
    }

    fn __repr__(&self) -> String {
        let m = &self.model;
        format!("Seq2Seq(vocab of {}, num_steps={})", m.vocab.len(), m.num_steps)
    }
}
