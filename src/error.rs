//! The one error type. Every variant names the argument at fault and, where
//! there is one, the value expected and the value found.

use core::fmt;

/// Why a call was refused. Nothing is written to any output when a call
/// returns an error.
///
/// In every variant `arg` names the argument (or `arg.field`), `expected`
/// the value the other arguments require and `actual` the value given.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum Error {
    /// A buffer's length is not what the shape requires.
    Length { arg: &'static str, expected: usize, actual: usize },
    /// A dimension does not match the one it must equal.
    Dimension { arg: &'static str, expected: usize, actual: usize },
    /// A shape's element count, or a strided view's extent, overflows `usize`.
    Overflow { arg: &'static str },
    /// A strided view reaches past the end of its buffer.
    OutOfBounds { arg: &'static str, needed: usize, len: usize },
    /// A writable strided view maps two elements to one place.
    Overlapping { arg: &'static str },
    /// A value is outside the range the argument allows.
    Value { arg: &'static str, index: usize },
    /// The named backend cannot run on this CPU.
    BackendUnavailable { backend: &'static str },
    /// More rows than a cache has room for.
    Capacity { arg: &'static str, capacity: usize, needed: usize },
    /// A tensor's storage type is not one the argument accepts.
    Storage { arg: &'static str, expected: &'static str, actual: &'static str },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Length { arg, expected, actual } => {
                write!(f, "`{arg}`: expected length {expected}, got {actual}")
            }
            Error::Dimension { arg, expected, actual } => {
                write!(f, "`{arg}`: expected dimension {expected}, got {actual}")
            }
            Error::Overflow { arg } => write!(f, "`{arg}`: size overflows usize"),
            Error::OutOfBounds { arg, needed, len } => {
                write!(f, "`{arg}`: view needs {needed} elements, buffer has {len}")
            }
            Error::Overlapping { arg } => write!(f, "`{arg}`: strides make elements overlap"),
            Error::Value { arg, index } => write!(f, "`{arg}`: invalid value at index {index}"),
            Error::BackendUnavailable { backend } => {
                write!(f, "backend `{backend}` is not available on this CPU")
            }
            Error::Capacity { arg, capacity, needed } => {
                write!(f, "`{arg}`: needs room for {needed} rows, capacity {capacity}")
            }
            Error::Storage { arg, expected, actual } => write!(f, "`{arg}`: expected storage {expected}, got {actual}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// `a * b`, or an overflow error naming `arg`.
pub(crate) fn checked_mul(arg: &'static str, a: usize, b: usize) -> Result<usize, Error> {
    a.checked_mul(b).ok_or(Error::Overflow { arg })
}

/// Checks that a buffer has exactly `expected` elements.
pub(crate) fn expect_len(arg: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual { Ok(()) } else { Err(Error::Length { arg, expected, actual }) }
}

/// The first `needed` values of a caller's scratch, or an error.
pub(crate) fn take<'a>(arg: &'static str, buffer: &'a mut [f32], needed: usize) -> Result<&'a mut [f32], Error> {
    let actual = buffer.len();
    buffer.get_mut(..needed).ok_or(Error::Length { arg, expected: needed, actual })
}
