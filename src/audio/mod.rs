//! Audio files and sample-rate conversion.
//!
//! - [`read_wav`] / [`write_wav`]: WAV files via `hound`, as a planar [`AudioClip`] of `f32`
//!   samples plus the [`WavFormat`] the file had, so a result can be written back the same way.
//!   Every bad input is a one-line [`AudioError`] naming the file; nothing here panics on bad
//!   data. Writes are atomic (temporary file in the same directory, fsync, rename).
//! - [`resample`]: band-limited, time-aligned resampling between the host rate and the
//!   model's 16 kHz (`rubato`'s FFT resampler), with an exactly predictable output length
//!   ([`resampled_len`]).
//!
//! Supported encodings: 8-, 16-, 24- and 32-bit integer PCM and 32-bit IEEE float, any number
//! of channels, sample rates [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].

mod resample;
mod source;
mod wav;

pub use resample::{resample, resampled_len, ResampleError, Resampler};
pub use source::{BlockSink, ClipReader, ClipWriter, FrameSource, OpenSource};
pub use wav::{read_wav, write_wav, write_wav_with, WavLayout, WavReader, WavSink};

use std::fmt;
use std::path::{Path, PathBuf};

/// Lowest sample rate accepted for files and for resampling (Hz).
pub const MIN_SAMPLE_RATE: u32 = 8_000;
/// Highest sample rate accepted for files and for resampling (Hz).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Most samples (frames × channels) [`read_wav`] holds in memory at once: 2^26, 256 MiB of
/// `f32`, 11.6 minutes of 48 kHz stereo. Longer files stream ([`WavReader`]).
pub const MAX_CLIP_SAMPLES: u64 = 1 << 26;

/// The largest sample magnitude taken (+60 dBFS): real audio, even float files with
/// headroom, stays far below; beyond it a clip is broken, and its spectra would overflow.
pub const MAX_SAMPLE: f32 = 1000.0;

/// The first sample of a planar block beyond [`MAX_SAMPLE`]: (channel, frame, value).
pub fn beyond_full_scale(block: &[Vec<f32>]) -> Option<(usize, usize, f32)> {
    block.iter().enumerate().find_map(|(c, samples)| samples.iter().position(|v| v.abs() > MAX_SAMPLE).map(|i| (c, i, samples[i])))
}

/// A piece of audio held in memory: planar `f32` samples, nominally in [-1, 1].
///
/// Invariant expected by every consumer (and checked by [`write_wav`]): all channels have
/// the same length. [`read_wav`] always returns at least one channel and one frame.
#[derive(Clone, Debug, PartialEq)]
pub struct AudioClip {
    /// Frames per second.
    pub sample_rate: u32,
    /// One `Vec` per channel (left, right, … in file order), all the same length.
    pub channels: Vec<Vec<f32>>,
}

impl AudioClip {
    /// A clip from planar channels (not validated; see the type's invariant).
    pub fn new(sample_rate: u32, channels: Vec<Vec<f32>>) -> Self {
        Self { sample_rate, channels }
    }

    /// Number of channels.
    pub fn num_channels(&self) -> usize {
        self.channels.len()
    }

    /// Number of sample frames (the length of the first channel; 0 without channels).
    pub fn num_frames(&self) -> usize {
        self.channels.first().map_or(0, Vec::len)
    }

    /// Duration in seconds.
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.num_frames() as f64 / self.sample_rate as f64
    }
}

/// How samples are stored in a WAV file: what [`read_wav`] found, what [`write_wav`] writes.
///
/// Supported: integer PCM with 8, 16, 24 or 32 bits, and 32-bit float (see
/// [`WavFormat::is_supported`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WavFormat {
    /// Bits per sample (8, 16, 24 or 32).
    pub bits_per_sample: u16,
    /// IEEE float samples (only with 32 bits) rather than integers.
    pub float: bool,
}

impl WavFormat {
    /// 8-bit unsigned integer PCM.
    pub const INT8: Self = Self::int(8);
    /// 16-bit integer PCM (CD quality).
    pub const INT16: Self = Self::int(16);
    /// 24-bit integer PCM.
    pub const INT24: Self = Self::int(24);
    /// 32-bit integer PCM.
    pub const INT32: Self = Self::int(32);
    /// 32-bit IEEE float.
    pub const FLOAT32: Self = Self { bits_per_sample: 32, float: true };
    /// Every supported format.
    pub const ALL: [Self; 5] = [Self::INT8, Self::INT16, Self::INT24, Self::INT32, Self::FLOAT32];

    const fn int(bits_per_sample: u16) -> Self {
        Self { bits_per_sample, float: false }
    }

    /// Whether this crate can read and write the format.
    pub fn is_supported(self) -> bool {
        if self.float {
            self.bits_per_sample == 32
        } else {
            matches!(self.bits_per_sample, 8 | 16 | 24 | 32)
        }
    }
}

impl fmt::Display for WavFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.float { "float" } else { "integer PCM" };
        write!(f, "{}-bit {kind}", self.bits_per_sample)
    }
}

/// Why a WAV file could not be read or written. `Display` is one line that names the file,
/// says what is wrong and, where it helps, what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    /// The operating system refused (missing file, permissions, disk full, …).
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        path: PathBuf,
        /// What was being attempted, e.g. "open the file for reading".
        action: &'static str,
        source: std::io::Error,
    },
    /// The file is not a RIFF/WAVE file at all (text, MP3, FLAC, …).
    #[error(
        "{} is not a WAV file ({what}); convert it to WAV first, e.g. `ffmpeg -i INPUT output.wav`",
        .path.display()
    )]
    NotWav {
        path: PathBuf,
        /// What the file looks like instead.
        what: String,
    },
    /// The header promises more audio than the file holds (cut off while copying or
    /// recording), or the file ends inside its header.
    #[error(
        "{} is truncated: {detail}; it was probably cut off while copying or recording, copy or export it again",
        .path.display()
    )]
    Truncated { path: PathBuf, detail: String },
    /// A valid WAV file with no sample frames.
    #[error("{} contains no audio (0 samples); choose a file that has audio in it", .path.display())]
    Empty { path: PathBuf },
    /// A WAV encoding this crate does not read or write (12-bit, 64-bit float, A-law, ADPCM, …).
    #[error(
        "{}: unsupported WAV encoding ({encoding}); use 8/16/24/32-bit integer PCM or 32-bit float, e.g. `ffmpeg -i INPUT -c:a pcm_s24le output.wav`",
        .path.display()
    )]
    UnsupportedEncoding { path: PathBuf, encoding: String },
    /// Sample rate outside [`MIN_SAMPLE_RATE`]..=[`MAX_SAMPLE_RATE`].
    #[error(
        "{}: sample rate {rate} Hz is outside the supported range {MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz; resample the audio first",
        .path.display()
    )]
    BadSampleRate { path: PathBuf, rate: u32 },
    /// A NaN or infinite sample (in a float file being read, or in a clip being written).
    #[error(
        "{}: channel {} has a non-finite sample ({value}) at {seconds:.6} s (frame {frame}); audio samples must be finite numbers, check what produced them",
        .path.display(), .channel + 1
    )]
    NonFinite {
        path: PathBuf,
        /// 0-based channel index (the message counts from 1).
        channel: usize,
        /// 0-based sample frame.
        frame: u64,
        /// `frame / sample_rate`.
        seconds: f64,
        value: f32,
    },
    /// RIFF/WAVE, but the header is inconsistent or damaged.
    #[error("{} is not a valid WAV file: {detail}", .path.display())]
    Malformed { path: PathBuf, detail: String },
    /// Too long to hold whole in memory (more than [`MAX_CLIP_SAMPLES`] samples).
    #[error(
        "{} is {seconds:.0} s long, more than can be held in memory here ({MAX_CLIP_SAMPLES} samples over all channels); cut it into shorter files",
        .path.display()
    )]
    TooLong { path: PathBuf, seconds: f64 },
    /// A source that gave fewer frames than it announced (a file changed while read).
    #[error("the input ended before its {frames} frames: was the file changed while it was read? Run again on a stable copy")]
    Ended { frames: usize },
    /// [`write_wav`] was handed a clip it cannot write (ragged channels, no channels, no
    /// samples, too long for WAV).
    #[error("cannot write {}: {reason}", .path.display())]
    InvalidClip { path: PathBuf, reason: String },
}

impl From<crate::files::FileError> for AudioError {
    fn from(e: crate::files::FileError) -> Self {
        Self::Io { path: e.path, action: e.action, source: e.source }
    }
}

impl AudioError {
    /// The file the error is about, where it is about one.
    pub fn path(&self) -> Option<&Path> {
        Some(match self {
            Self::Io { path, .. }
            | Self::NotWav { path, .. }
            | Self::Truncated { path, .. }
            | Self::Empty { path }
            | Self::UnsupportedEncoding { path, .. }
            | Self::BadSampleRate { path, .. }
            | Self::NonFinite { path, .. }
            | Self::Malformed { path, .. }
            | Self::TooLong { path, .. }
            | Self::InvalidClip { path, .. } => path,
            Self::Ended { .. } => return None,
        })
    }
}
