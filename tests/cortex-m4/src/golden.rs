//! The model and the golden cases, as `build.rs` wrote them into flash:
//! each file's metadata and its tensors by name, in their stored types.

use half::slice::HalfBitsSliceExt;
use half::{bf16, f16};

/// A tensor's values as stored in the file.
#[derive(Clone, Copy)]
pub enum Data {
    /// `F32`.
    F32(&'static [f32]),
    /// `BF16`, as bits.
    Bf16(&'static [u16]),
    /// `F16`, as bits.
    F16(&'static [u16]),
    /// `I8`.
    I8(&'static [i8]),
    /// `U8` or `BOOL` (a 0/1 mask).
    U8(&'static [u8]),
    /// `I64` (token ids, valid lengths).
    I64(&'static [i64]),
}

impl Data {
    /// Bytes the values take in flash.
    pub fn bytes(&self) -> usize {
        match *self {
            Data::F32(v) => core::mem::size_of_val(v),
            Data::Bf16(v) | Data::F16(v) => core::mem::size_of_val(v),
            Data::I8(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I64(v) => core::mem::size_of_val(v),
        }
    }
}

/// One named tensor.
pub struct Tensor {
    pub name: &'static str,
    pub shape: &'static [usize],
    pub data: Data,
}

/// One `.safetensors` file.
pub struct Case {
    pub name: &'static str,
    pub meta: &'static [(&'static str, &'static str)],
    /// The metadata values that are numbers, parsed by build.rs.
    pub numbers: &'static [(&'static str, f32)],
    pub tensors: &'static [Tensor],
}

/// Why a case could not be read: the tensor and what was wrong.
#[derive(Clone, Copy, Debug)]
pub struct Missing(pub &'static str);

impl Case {
    /// The tensor called `name`.
    pub fn tensor(&self, name: &'static str) -> Result<&'static Tensor, Missing> {
        let tensors: &'static [Tensor] = self.tensors;
        tensors.iter().find(|t| t.name == name).ok_or(Missing(name))
    }

    /// Whether the file has a tensor called `name`.
    pub fn has(&self, name: &str) -> bool {
        self.tensors.iter().any(|t| t.name == name)
    }

    /// The shape of `name`.
    pub fn shape(&self, name: &'static str) -> Result<&'static [usize], Missing> {
        Ok(self.tensor(name)?.shape)
    }

    /// The values of an `F32` tensor.
    pub fn f32s(&self, name: &'static str) -> Result<&'static [f32], Missing> {
        match self.tensor(name)?.data {
            Data::F32(v) => Ok(v),
            _ => Err(Missing(name)),
        }
    }

    /// The values of an `I64` tensor.
    pub fn i64s(&self, name: &'static str) -> Result<&'static [i64], Missing> {
        match self.tensor(name)?.data {
            Data::I64(v) => Ok(v),
            _ => Err(Missing(name)),
        }
    }

    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Option<&'static str> {
        let meta: &'static [(&'static str, &'static str)] = self.meta;
        meta.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    /// A numeric metadata entry.
    pub fn number(&self, key: &str) -> Option<f32> {
        self.numbers.iter().find(|(k, _)| *k == key).map(|&(_, v)| v)
    }

    /// Bytes all its tensors take in flash.
    pub fn bytes(&self) -> usize {
        self.tensors.iter().map(|t| t.data.bytes()).sum()
    }
}

/// `BF16` bits as the core's `bf16`, without a copy.
pub fn as_bf16(bits: &'static [u16]) -> &'static [bf16] {
    bits.reinterpret_cast()
}

/// `F16` bits as the core's `f16`, without a copy.
pub fn as_f16(bits: &'static [u16]) -> &'static [f16] {
    bits.reinterpret_cast()
}

include!(concat!(env!("OUT_DIR"), "/golden_data.rs"));
