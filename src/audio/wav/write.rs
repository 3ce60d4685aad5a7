//! Encoding with hound, inside an atomic write.

use std::fs::File;
use std::io;
use std::path::Path;

use super::io_err;
use crate::audio::{AudioClip, AudioError, WavFormat, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE};
use crate::files::write_atomic;

/// Write a clip as a WAV file in `format`, atomically (see [`write_wav_with`]).
pub fn write_wav(path: &Path, clip: &AudioClip, format: WavFormat) -> Result<(), AudioError> {
    let n_ch = clip.channels.len();
    let frames = clip.num_frames();
    if let Some((i, ch)) = clip.channels.iter().enumerate().find(|(_, ch)| ch.len() != frames) {
        return Err(AudioError::InvalidClip {
            path: path.to_owned(),
            reason: format!("channel {} has {} samples but channel 1 has {frames}; all channels must have the same length", i + 1, ch.len()),
        });
    }
    let layout = WavLayout { sample_rate: clip.sample_rate, channels: n_ch, frames, format };
    write_wav_with(path, layout, |sink| sink.write(&clip.channels))
}

/// What [`write_wav_with`] writes: `frames` frames of `channels` channels in `format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WavLayout {
    pub sample_rate: u32,
    pub channels: usize,
    pub frames: usize,
    pub format: WavFormat,
}

/// Writes a WAV file atomically while `produce` hands its samples, block by block, to the
/// [`WavSink`]: a temporary file in the target's directory ([`crate::files::write_atomic`]:
/// unnamed on Linux until complete, `.NAME.tmp-PID-N` elsewhere), flushed to disk, then
/// renamed over `path`. On any error (`produce`'s too) the temporary file is
/// removed and an existing `path` is left untouched.
///
/// Float samples are stored as they are for [`WavFormat::FLOAT32`]; for integer formats they
/// are scaled by 2^(bits-1), rounded to nearest and clamped (so +1.0 becomes the largest
/// integer). Refuses before touching the disk: an unsupported format
/// (`UnsupportedEncoding`), a sample rate outside 8–384 kHz (`BadSampleRate`), no channels /
/// no frames / more than 4 GiB of data (`InvalidClip`); while writing: a non-finite sample
/// (`NonFinite`), and a different number of frames than `layout` says (`InvalidClip`).
pub fn write_wav_with<E, F>(path: &Path, layout: WavLayout, produce: F) -> Result<(), E>
where
    E: From<AudioError>,
    F: FnOnce(&mut WavSink<'_>) -> Result<(), E>,
{
    enum Failure<E> {
        Audio(AudioError),
        Produce(E),
    }
    impl<E> From<crate::files::FileError> for Failure<E> {
        fn from(e: crate::files::FileError) -> Self {
            Self::Audio(e.into())
        }
    }
    validate_layout(path, &layout)?;
    let spec = hound::WavSpec {
        channels: layout.channels as u16,
        sample_rate: layout.sample_rate,
        bits_per_sample: layout.format.bits_per_sample,
        sample_format: if layout.format.float { hound::SampleFormat::Float } else { hound::SampleFormat::Int },
    };
    let written = write_atomic(path, |out| {
        let writer = hound::WavWriter::new(out, spec).map_err(|e| Failure::Audio(hound_err(path, e)))?;
        let mut sink = WavSink { writer, path, layout, written: 0 };
        produce(&mut sink).map_err(Failure::Produce)?;
        sink.finish().map_err(Failure::Audio)
    });
    written.map_err(|e| match e {
        Failure::Audio(e) => E::from(e),
        Failure::Produce(e) => e,
    })
}

/// Where [`write_wav_with`]'s samples go.
pub struct WavSink<'w> {
    writer: hound::WavWriter<&'w mut io::BufWriter<File>>,
    path: &'w Path,
    layout: WavLayout,
    written: usize,
}

impl WavSink<'_> {
    /// Appends planar frames (one slice per channel, equal lengths).
    pub fn write(&mut self, block: &[Vec<f32>]) -> Result<(), AudioError> {
        let frames = block.first().map_or(0, Vec::len);
        let invalid = |reason: String| AudioError::InvalidClip { path: self.path.to_owned(), reason };
        if block.len() != self.layout.channels || block.iter().any(|c| c.len() != frames) {
            return Err(invalid(format!("a block of {} channels of unequal or wrong shape was written to {} channels", block.len(), self.layout.channels)));
        }
        if self.written + frames > self.layout.frames {
            return Err(invalid(format!("more than the {} frames announced were written", self.layout.frames)));
        }
        let (path, rate) = (self.path, self.layout.sample_rate);
        let bits = self.layout.format.bits_per_sample;
        let scale = (1u64 << (bits - 1)) as f64;
        for f in 0..frames {
            for (c, ch) in block.iter().enumerate() {
                let v = ch[f];
                if !v.is_finite() {
                    let frame = (self.written + f) as u64;
                    return Err(AudioError::NonFinite { path: path.to_owned(), channel: c, frame, seconds: frame as f64 / f64::from(rate), value: v });
                }
                let done = if self.layout.format.float {
                    self.writer.write_sample(v)
                } else {
                    self.writer.write_sample((f64::from(v) * scale).round().clamp(-scale, scale - 1.0) as i32)
                };
                done.map_err(|e| hound_err(path, e))?;
            }
        }
        self.written += frames;
        Ok(())
    }

    fn finish(self) -> Result<(), AudioError> {
        if self.written != self.layout.frames {
            return Err(AudioError::InvalidClip {
                path: self.path.to_owned(),
                reason: format!("{} frames were written of the {} announced", self.written, self.layout.frames),
            });
        }
        self.writer.finalize().map_err(|e| hound_err(self.path, e))
    }
}

fn hound_err(path: &Path, e: hound::Error) -> AudioError {
    match e {
        hound::Error::IoError(e) => io_err(path, "write", e),
        other => io_err(path, "write", io::Error::other(other.to_string())),
    }
}

pub(super) fn validate_layout(path: &Path, layout: &WavLayout) -> Result<(), AudioError> {
    let invalid = |reason: String| AudioError::InvalidClip { path: path.to_owned(), reason };
    let format = layout.format;
    if !format.is_supported() {
        return Err(AudioError::UnsupportedEncoding { path: path.to_owned(), encoding: format.to_string() });
    }
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&layout.sample_rate) {
        return Err(AudioError::BadSampleRate { path: path.to_owned(), rate: layout.sample_rate });
    }
    let n_ch = layout.channels;
    if n_ch == 0 {
        return Err(invalid("the clip has no channels".into()));
    }
    // The fmt chunk stores the frame size in a u16 and the byte rate in a u32 (and hound
    // overflows on them instead of failing).
    let frame_bytes = n_ch as u64 * u64::from(format.bits_per_sample / 8);
    if frame_bytes > u64::from(u16::MAX) || frame_bytes * u64::from(layout.sample_rate) > u64::from(u32::MAX) {
        return Err(invalid(format!("{n_ch} channels of {format} at {} Hz do not fit in a WAV header; write fewer channels", layout.sample_rate)));
    }
    let frames = layout.frames;
    if frames == 0 {
        return Err(invalid("the clip has no samples".into()));
    }
    let data_bytes = frames as u128 * u128::from(frame_bytes);
    // hound writes a 44-byte header, or 68 with WAVE_FORMAT_EXTENSIBLE (more than two
    // channels or 16 bits); the RIFF size, all but its first 8 bytes, is a u32.
    let header = if n_ch <= 2 && format.bits_per_sample <= 16 { 44 } else { 68 };
    if data_bytes + header - 8 > u128::from(u32::MAX) {
        return Err(invalid(format!("{frames} frames × {n_ch} channels of {format} exceed the 4 GiB limit of a WAV file; write a shorter clip or fewer bits")));
    }
    Ok(())
}
