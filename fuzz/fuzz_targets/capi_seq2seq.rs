#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| simd_attention_fuzz::capi_seq2seq(data));
