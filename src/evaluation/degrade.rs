//! Test material: a clean clip degraded the way a restoration assumes, at its own rate and
//! channel count.

use candle_core::{Device, Tensor};

use crate::audio::{beyond_full_scale, AudioClip, AudioError, BlockSink, ClipReader, ClipWriter, FrameSource, MAX_SAMPLE};
use crate::dsp::fir::FirStream;
use crate::dsp::griffin_lim;
use crate::dsp::sinc_resample::SincResampler;
use crate::dsp::stft::StftConfig;
use crate::dsp::MODEL_SAMPLE_RATE;
use crate::restore::noise::NoiseSource;
use crate::restore::operators::{add_measurement_noise, gap_ranges, Degradation, Operator, OperatorError};
use crate::restore::random_walk::cross_correlation;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DegradeOptions {
    /// Standard deviation of Gaussian noise added to the measurement.
    pub noise_std: f64,
    /// Seed of the measurement noise (channel `c` uses `seed + c` for phase retrieval).
    pub seed: u64,
    /// Phase retrieval: Griffin-Lim iterations that turn the magnitude back into audio.
    pub griffin_lim_iterations: usize,
    /// Declipping: gain in dB before the clipping (what drives a track into it).
    pub gain_db: f64,
}

impl Default for DegradeOptions {
    fn default() -> Self {
        Self { noise_std: 0.0, seed: 0, griffin_lim_iterations: 64, gain_db: 0.0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DegradeError {
    #[error("{samples} samples is too short for phase retrieval (needs more than {needed})")]
    TooShortForPhase { samples: usize, needed: usize },
    #[error(
        "{seconds:.0} s is too long for phase retrieval here (Griffin-Lim holds the whole spectrogram): at most {limit:.0} s; cut the file into shorter ones"
    )]
    TooLongForPhase { seconds: f64, limit: f64 },
    /// A float file can hold samples up to 3e38, whose filtered or noisy versions overflow.
    #[error("channel {} has a sample of {value:e} at {seconds:.3} s, far beyond full scale (±{MAX_SAMPLE} at most are taken): normalise the file", .channel + 1)]
    OutOfRange { channel: usize, seconds: f64, value: f32 },
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error("degrading failed: {0}")]
    Tensor(#[from] candle_core::Error),
}

/// The paper's STFT (n_fft 1024, hop 160 at 16 kHz) scaled to another rate.
fn phase_stft_at(sample_rate: u32) -> StftConfig {
    let scale = sample_rate as f64 / MODEL_SAMPLE_RATE as f64;
    StftConfig { n_fft: ((1024.0 * scale).round() as usize).next_power_of_two(), hop: (160.0 * scale).round().max(1.0) as usize }
}

/// Longest clip phase retrieval degrades, in samples per channel: Griffin-Lim holds the
/// whole STFT (about 130 bytes per sample), so 2^23 samples (3 minutes at 44.1 kHz) take
/// about 1 GiB.
pub const MAX_PHASE_SAMPLES: usize = 1 << 23;

/// `A(clip)` plus measurement noise, as audio (see [`degrade_stream`]).
pub fn degrade(clip: &AudioClip, degradation: &Degradation, options: &DegradeOptions) -> Result<AudioClip, DegradeError> {
    let mut out = ClipWriter::new(clip.num_channels(), clip.num_frames());
    degrade_stream(&mut ClipReader::new(clip), degradation, options, &mut |block| {
        out.push(block);
        Ok(())
    })?;
    Ok(out.into_clip(clip.sample_rate))
}

/// Samples (frames × channels) degraded at a time.
const BLOCK: usize = 1 << 17;

/// `A(input)` plus measurement noise (channel `c` draws from stream `c` of the seed), as
/// audio, block by block into `sink`: gaps and filters hold a block and the filter's span
/// per channel, whatever the length. Phase retrieval keeps only the STFT magnitude, so its
/// result is a Griffin-Lim reconstruction, what a user with that magnitude would hear; it
/// holds the clip, up to [`MAX_PHASE_SAMPLES`] per channel.
pub fn degrade_stream(input: &mut dyn FrameSource, degradation: &Degradation, options: &DegradeOptions, sink: &mut BlockSink<'_>) -> Result<(), DegradeError> {
    let (rate, n_ch, len) = (input.sample_rate(), input.channels(), input.frames());
    match degradation {
        Degradation::PhaseRetrieval { .. } => return degrade_phase(input, options, sink),
        Degradation::Downsample { factor } => return degrade_downsampled(input, *factor, options, sink),
        _ => {}
    }
    let gaps = match degradation {
        Degradation::Inpaint { gaps } => gap_ranges(gaps, rate, len)?,
        _ => Vec::new(),
    };
    // Inpainting's gaps are applied above, without a clip-long mask.
    let (mut filters, mut clip): (Vec<FirStream>, _) = (Vec::new(), None);
    if !matches!(degradation, Degradation::Inpaint { .. }) {
        match Operator::new(degradation, rate, len, &Device::Cpu)? {
            Operator::Filter(fir) => filters = (0..n_ch).map(|_| FirStream::new(fir.clone(), len)).collect(),
            Operator::Clip { level } => clip = Some((10f64.powf(options.gain_db / 20.0), level)),
            // The measurement is made through the stream's first response.
            Operator::RandomWalk(reverb) => {
                let response = cross_correlation(&reverb.next_response());
                filters = (0..n_ch).map(|_| FirStream::new(response.clone(), len)).collect();
            }
            Operator::Mask { .. } | Operator::Magnitude(_) | Operator::Decimate(_) => unreachable!("handled above"),
        }
    }
    let mut noise: Vec<NoiseSource> = (0..n_ch as u64).map(|c| NoiseSource::new(options.seed, c)).collect();
    let (mut read, mut written) = (0, 0);
    while written < len {
        // Empty once all is read, while the filters' delays flush.
        let mut block = input.read_exact((BLOCK / n_ch).max(1).min(len - read))?;
        let n = block[0].len();
        check_range(&block, read, rate)?;
        for g in gaps.iter().filter(|g| g.start < read + n && read < g.end) {
            for ch in &mut block {
                ch[g.start.max(read) - read..g.end.min(read + n) - read].fill(0.0);
            }
        }
        read += n;
        if let Some((gain, level)) = clip {
            block.iter_mut().flatten().for_each(|v| *v = (f64::from(*v) * gain).clamp(-level, level) as f32);
        }
        if !filters.is_empty() {
            block = block.iter().zip(&mut filters).map(|(x, f)| f.push(x)).collect();
        }
        for (ch, source) in block.iter_mut().zip(&mut noise) {
            add_noise(ch, source, options.noise_std);
        }
        written += block[0].len();
        if !block[0].is_empty() {
            sink(&block)?;
        }
    }
    Ok(())
}

/// Refuses samples beyond [`MAX_SAMPLE`] in a block that starts at frame `at`.
fn check_range(block: &[Vec<f32>], at: usize, rate: u32) -> Result<(), DegradeError> {
    match beyond_full_scale(block) {
        Some((channel, i, value)) => Err(DegradeError::OutOfRange { channel, seconds: (at + i) as f64 / rate as f64, value }),
        None => Ok(()),
    }
}

/// The paper's super-resolution as audio at the clip's rate: down by `factor` and back up,
/// both with torchaudio's resampler. Only the experiment's short segments come here: it
/// holds the clip.
fn degrade_downsampled(input: &mut dyn FrameSource, factor: u32, options: &DegradeOptions, sink: &mut BlockSink<'_>) -> Result<(), DegradeError> {
    let (rate, len) = (input.sample_rate(), input.frames());
    if factor < 2 || !rate.is_multiple_of(factor) {
        return Err(OperatorError::DownsampleFactor { factor, sample_rate: rate }.into());
    }
    let clip = input.read_exact(len)?;
    check_range(&clip, 0, rate)?;
    let (down, up) = (SincResampler::torchaudio(rate, rate / factor), SincResampler::torchaudio(rate / factor, rate));
    let mut channels: Vec<Vec<f32>> = clip.iter().map(|x| up.resample(&down.resample(x))[..len].to_vec()).collect();
    for (c, ch) in channels.iter_mut().enumerate() {
        add_noise(ch, &mut NoiseSource::new(options.seed, c as u64), options.noise_std);
    }
    Ok(sink(&channels)?)
}

/// Measurement noise of `std` from `source` added to `channel` (nothing drawn at 0).
fn add_noise(channel: &mut [f32], source: &mut NoiseSource, std: f64) {
    if std > 0.0 {
        let draws = source.values(channel.len());
        channel.iter_mut().zip(draws).for_each(|(v, z)| *v += (f64::from(z) * std) as f32);
    }
}

fn degrade_phase(input: &mut dyn FrameSource, options: &DegradeOptions, sink: &mut BlockSink<'_>) -> Result<(), DegradeError> {
    let (rate, len) = (input.sample_rate(), input.frames());
    let config = phase_stft_at(rate);
    if len <= config.n_fft / 2 {
        return Err(DegradeError::TooShortForPhase { samples: len, needed: config.n_fft / 2 });
    }
    if len > MAX_PHASE_SAMPLES {
        return Err(DegradeError::TooLongForPhase { seconds: len as f64 / rate as f64, limit: MAX_PHASE_SAMPLES as f64 / rate as f64 });
    }
    let clip = input.read_exact(len)?;
    check_range(&clip, 0, rate)?;
    let channels = clip
        .iter()
        .enumerate()
        .map(|(c, x)| {
            let shape = (1, x.len() / config.hop + 1, config.bins());
            let magnitude = Tensor::from_vec(griffin_lim::magnitude(x, config), shape, &Device::Cpu)?;
            let noisy = add_measurement_noise(&magnitude, options.noise_std, options.seed.wrapping_add(c as u64))?.relu()?;
            let noisy: Vec<f32> = noisy.flatten_all()?.to_vec1()?;
            Ok(griffin_lim::reconstruct(&noisy, len, config, options.griffin_lim_iterations))
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    Ok(sink(&channels)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::operators::{Gap, ImpulseResponse};

    #[test]
    fn inpainting_silences_only_the_gap_and_noise_is_seeded() {
        let clip = AudioClip::new(8_000, vec![vec![0.5; 8_000], vec![-0.25; 8_000]]);
        let gaps = Degradation::Inpaint { gaps: vec![Gap { start: 0.25, end: 0.5 }] };
        let out = degrade(&clip, &gaps, &DegradeOptions::default()).unwrap();
        for (c, ch) in out.channels.iter().enumerate() {
            assert!(ch[..2_000].iter().chain(&ch[4_000..]).all(|&v| v == clip.channels[c][0]));
            assert!(ch[2_000..4_000].iter().all(|&v| v == 0.0));
        }
        let noisy = DegradeOptions { noise_std: 0.01, seed: 3, ..Default::default() };
        let a = degrade(&clip, &gaps, &noisy).unwrap();
        assert_eq!(a, degrade(&clip, &gaps, &noisy).unwrap());
        assert_ne!(a, out);
    }

    #[test]
    fn phase_retrieval_refuses_a_clip_shorter_than_its_window() {
        let clip = AudioClip::new(16_000, vec![vec![0.1; 400]]);
        let err = degrade(&clip, &Degradation::PHASE_RETRIEVAL, &DegradeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("too short for phase retrieval"), "{err}");
    }

    #[test]
    fn long_clips_stream_through_the_filters_in_blocks() {
        let len = 3 * BLOCK + 123;
        let x: Vec<f32> = (0..len).map(|n| ((n * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        let clip = AudioClip::new(16_000, vec![x.clone()]);
        let room = Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60: 0.3, seed: 1 } };
        for degradation in [Degradation::SuperResolution { cutoff_hz: 2000.0 }, room] {
            let Operator::Filter(fir) = Operator::new(&degradation, 16_000, len, &Device::Cpu).unwrap() else { unreachable!() };
            let want = fir.filter(&x);
            let got = degrade(&clip, &degradation, &DegradeOptions::default()).unwrap().channels.remove(0);
            let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(got.len() == len && err < 1e-4, "{degradation:?}: {err}");
        }
        // The noise of a channel is one sequence across blocks.
        let silence = AudioClip::new(16_000, vec![vec![0.0; len]; 2]);
        let gap = Degradation::Inpaint { gaps: vec![Gap { start: 0.0, end: 0.1 }] };
        let noisy = degrade(&silence, &gap, &DegradeOptions { noise_std: 0.5, seed: 9, ..Default::default() }).unwrap();
        for (c, ch) in noisy.channels.iter().enumerate() {
            let want: Vec<f32> = NoiseSource::new(9, c as u64).values(len).iter().map(|z| (f64::from(*z) * 0.5) as f32).collect();
            assert_eq!(*ch, want, "channel {c}");
        }
    }

    #[test]
    fn phase_retrieval_refuses_what_it_cannot_hold() {
        let clip = AudioClip::new(8_000, vec![vec![0.1; MAX_PHASE_SAMPLES + 1]]);
        let err = degrade(&clip, &Degradation::PHASE_RETRIEVAL, &DegradeOptions::default()).unwrap_err();
        assert!(err.to_string().contains("too long for phase retrieval here"), "{err}");
    }

    #[test]
    fn samples_far_beyond_full_scale_are_refused_by_position() {
        let mut x = vec![0.5f32; 20_000];
        x[12_000] = 3e38;
        let clip = AudioClip::new(8_000, vec![vec![0.1; 20_000], x]);
        for d in [Degradation::SuperResolution { cutoff_hz: 1000.0 }, Degradation::PHASE_RETRIEVAL] {
            let err = degrade(&clip, &d, &DegradeOptions::default()).unwrap_err().to_string();
            assert!(err.contains("channel 2 has a sample of 3e38 at 1.500 s"), "{err}");
        }
    }

    /// A source that announces more frames than it has, like a file cut while being read.
    struct Short;

    impl FrameSource for Short {
        fn sample_rate(&self) -> u32 {
            16_000
        }
        fn channels(&self) -> usize {
            1
        }
        fn frames(&self) -> usize {
            20_000
        }
        fn read(&mut self, _max: usize) -> Result<Vec<Vec<f32>>, AudioError> {
            Ok(vec![Vec::new()])
        }
    }

    #[test]
    fn a_source_that_ends_early_is_an_error_not_a_hang() {
        let lowpass = Degradation::SuperResolution { cutoff_hz: 2000.0 };
        let err = degrade_stream(&mut Short, &lowpass, &DegradeOptions::default(), &mut |_| Ok(())).unwrap_err();
        assert!(matches!(err, DegradeError::Audio(AudioError::Ended { frames: 20_000 })), "{err}");
    }
}
