//! Models built from the operators: the GRU and d2l's Bahdanau seq2seq
//! with greedy decoding. No allocation; scratch comes from the caller.

mod dense;
mod gru;
mod seq2seq;

pub use dense::{Weight, transpose};
pub use gru::GruLayer;
pub use seq2seq::{DecodeOptions, Seq2Seq};
