//! WAV reading and writing.
//!
//! Reading walks the RIFF chunks itself so that every kind of bad input gets its own error
//! with a useful message, and so that what other readers accept is accepted here too (odd
//! chunks with their pad byte, a wrong `byte_rate`, fmt chunks longer than needed); then
//! it decodes the data chunk itself, block by block. (hound, which writes, reports most
//! problems as a generic "format error", refuses those valid files, and never compares the
//! data chunk's declared length with the file size.)
//!
//! Integer samples map to floats by dividing by 2^(bits-1) (8-bit files are unsigned on disk
//! and re-centred). Writing multiplies back, rounds to nearest and clamps to the integer
//! range, so integer files round-trip bit-exactly; float files are written as is.
//!
//! [`header`] walks the RIFF chunks, [`read`] decodes, [`write`] encodes (with hound) into
//! an atomic write.

mod header;
mod read;
mod write;

pub use read::{read_wav, WavReader};
pub use write::{write_wav, write_wav_with, WavLayout, WavSink};

use std::io;
use std::path::Path;

use super::AudioError;

fn io_err(path: &Path, action: &'static str, source: io::Error) -> AudioError {
    AudioError::Io { path: path.to_owned(), action, source }
}

#[cfg(test)]
mod tests;
