//! Decoding the data chunk, block by block.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::header::{scan_header, Header};
use super::io_err;
use crate::audio::{AudioClip, AudioError, WavFormat, MAX_CLIP_SAMPLES};

/// Read a WAV file into a planar clip, and report the format it was stored in.
///
/// For clips held whole (an impulse response, an experiment's clips, a file opened in the
/// editor): files of more than [`MAX_CLIP_SAMPLES`] samples are refused; stream longer ones
/// with [`WavReader`].
///
/// Errors (see [`AudioError`]): `Io` (cannot open/read), `NotWav`, `Truncated` (the data
/// chunk claims more bytes than the file has), `Empty`, `UnsupportedEncoding`,
/// `BadSampleRate` (outside 8–384 kHz), `NonFinite` (NaN/inf in a float file; the first one
/// in time order is reported), `Malformed` (inconsistent header), `TooLong`.
pub fn read_wav(path: &Path) -> Result<(AudioClip, WavFormat), AudioError> {
    let mut reader = WavReader::open(path)?;
    let samples = reader.frames() as u64 * reader.channels() as u64;
    if samples > MAX_CLIP_SAMPLES {
        return Err(AudioError::TooLong { path: path.to_owned(), seconds: reader.frames() as f64 / f64::from(reader.sample_rate()) });
    }
    let channels = reader.read(reader.frames())?;
    Ok((AudioClip { sample_rate: reader.sample_rate(), channels }, reader.format()))
}

/// A WAV file open for reading block by block: what [`read_wav`] does at once, in bounded
/// memory. The header is checked by [`WavReader::open`]; samples are decoded as they are read.
pub struct WavReader {
    input: BufReader<File>,
    header: Header,
    path: PathBuf,
    /// Frames read so far.
    position: u64,
}

impl WavReader {
    /// Opens `path` and checks its header (the errors of [`read_wav`] but `NonFinite`,
    /// which [`WavReader::read`] reports when it gets there).
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        // A FIFO would block forever and a device could be endless: regular files only.
        let (mut file, file_len) = crate::files::open_regular(path, "WAV", u64::MAX)?;
        let header = scan_header(&mut file, file_len, path)?;
        file.seek(SeekFrom::Start(header.data_offset)).map_err(|e| io_err(path, "read", e))?;
        Ok(Self { input: BufReader::with_capacity(1 << 16, file), header, path: path.to_owned(), position: 0 })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn sample_rate(&self) -> u32 {
        self.header.sample_rate
    }

    pub fn channels(&self) -> usize {
        usize::from(self.header.channels)
    }

    /// Sample frames in the file.
    pub fn frames(&self) -> usize {
        self.header.frames as usize
    }

    pub fn format(&self) -> WavFormat {
        self.header.format
    }

    /// The next `max` frames (fewer at the end of the data, none after it), planar:
    /// integers divided by 2^(bits−1) (8-bit is unsigned on disk, re-centred first),
    /// floats as they are.
    pub fn read(&mut self, max: usize) -> Result<Vec<Vec<f32>>, AudioError> {
        let (header, path) = (&self.header, self.path.as_path());
        let frames = (header.frames - self.position).min(max as u64) as usize;
        let n_ch = usize::from(header.channels);
        let bytes = usize::from(header.format.bits_per_sample / 8);
        let mut channels: Vec<Vec<f32>> = (0..n_ch).map(|_| Vec::with_capacity(frames)).collect();
        let scale = 1.0 / (1u64 << (header.format.bits_per_sample - 1)) as f64;
        let frame_bytes = bytes * n_ch;
        let mut block = vec![0u8; frame_bytes * (1 << 14).min(frames.max(1))];
        let mut done = 0;
        while done < frames {
            let take = (frames - done).min(block.len() / frame_bytes);
            let buf = &mut block[..take * frame_bytes];
            self.input.read_exact(buf).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => AudioError::Truncated { path: path.to_owned(), detail: "the file ends before the last sample".into() },
                _ => io_err(path, "read", e),
            })?;
            for (f, frame) in buf.chunks_exact(frame_bytes).enumerate() {
                for (c, b) in frame.chunks_exact(bytes).enumerate() {
                    let v = if header.format.float {
                        let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                        if !v.is_finite() {
                            let frame = self.position + (done + f) as u64;
                            return Err(AudioError::NonFinite {
                                path: path.to_owned(),
                                channel: c,
                                frame,
                                seconds: frame as f64 / f64::from(header.sample_rate),
                                value: v,
                            });
                        }
                        v
                    } else {
                        let i = match bytes {
                            1 => i32::from(b[0]) - 128,
                            2 => i32::from(i16::from_le_bytes([b[0], b[1]])),
                            3 => i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8,
                            _ => i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
                        };
                        // Exact in f64 (power-of-two scale), then one rounding to f32.
                        (f64::from(i) * scale) as f32
                    };
                    channels[c].push(v);
                }
            }
            done += take;
        }
        self.position += frames as u64;
        Ok(channels)
    }
}
