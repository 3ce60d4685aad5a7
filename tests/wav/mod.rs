//! Float WAV files for the command-line tests, written and read with `hound` directly so
//! the tests do not depend on the code they test.

#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;

/// Writes planar `channels` as a 32-bit float WAV at `rate`.
pub fn write_wav(path: &Path, rate: u32, channels: &[Vec<f32>]) {
    let spec = hound::WavSpec { channels: channels.len() as u16, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..channels[0].len() {
        for ch in channels {
            w.write_sample(ch[n]).unwrap();
        }
    }
    w.finalize().unwrap();
}

/// A 32-bit float WAV as (rate, planar channels).
pub fn read_wav(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let spec = r.spec();
    let flat: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    let ch = spec.channels as usize;
    (spec.sample_rate, (0..ch).map(|c| flat.iter().skip(c).step_by(ch).copied().collect()).collect())
}
