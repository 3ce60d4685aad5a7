//! The non-realtime side of a restoration: from a user's clip (any rate, mono or stereo,
//! any length) to model-length windows the prior restores, and from those back into the
//! clip at its own rate.
//!
//! Stereo is restored as mid and side: the side of most music is quiet and often silent
//! (then it is skipped, halving the work), and restoring L and R apart would let the prior
//! invent different content in each ear, which smears the stereo image. Long input is cut
//! into overlapping windows ([`windows`]); for inpainting each window treats what the
//! previous one restored as known, so the fill continues across window borders. The result
//! goes back into the original by [`splice`]. The plugin runs restorations on a
//! background [`worker`] that owns the prior.

pub mod splice;
pub mod windows;
pub mod worker;

use candle_core::Tensor;
use std::ops::{ControlFlow, Range};

use crate::audio::{
    beyond_full_scale, resampled_len, AudioClip, AudioError, BlockSink, ClipReader, ClipWriter, FrameSource, OpenSource, ResampleError, Resampler, MAX_SAMPLE,
};
use crate::dsp::clipping::is_clipped;
use crate::restore::guidance::Stage;
use crate::restore::measurement::{Measurement, MeasurementError};
use crate::restore::operators::{gap_ranges, region_ranges, Degradation, Operator, OperatorError};
use crate::restore::prior::LatentPrior;
use crate::restore::sampler::{sample_batch, BatchItem, SampleError, SamplerSettings, StepReport};
use splice::{Splice, Splicer};

/// Shortest clip the loss's STFT and the prior can work on.
pub const MIN_SECONDS: f64 = 0.25;

/// What the engine writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputMode {
    /// The input at its own rate, with only what was lost replaced ([`splice`]).
    Splice,
    /// The prior's raw output (16 kHz for AudioLDM2), as the paper evaluates it.
    Model,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RestoreRequest {
    pub degradation: Degradation,
    pub sampler: SamplerSettings,
    pub output: OutputMode,
    /// Length of the prior's windows, in seconds.
    pub window_seconds: f64,
    /// Overlap between consecutive windows, in seconds.
    pub overlap_seconds: f64,
    /// Most windows (mid and side count apart) sampled as one batch; inpainting batches
    /// only a window's mid and side. `None`: the device's default ([`default_batch`]).
    pub batch: Option<usize>,
    /// At a rate above the prior's, the band above the prior's ([`crate::dsp::band_extension`]):
    /// made for filled gaps from the audio around them; for super-resolution, continued from
    /// the spectrum below (above a cutoff the prior cannot reach, instead of refusing it).
    pub full_band: bool,
}

/// Windows sampled at once unless a request says otherwise: a window's mid and side on
/// CUDA; one on the CPU, where a batch takes as long as its windows one by one and holds
/// their memory (about 4 GB each in f32 at full size) together.
pub fn default_batch(device: &candle_core::Device) -> usize {
    if device.is_cuda() {
        2
    } else {
        1
    }
}

impl RestoreRequest {
    /// This request as a preview ([`SamplerSettings::preview`]).
    pub fn preview(self) -> Self {
        Self { sampler: self.sampler.preview(), ..self }
    }

    /// 5.12 s windows (the paper's clip length, rounded to whole UNet levels) overlapping
    /// by 1 s.
    pub fn new(degradation: Degradation, sampler: SamplerSettings) -> Self {
        Self { degradation, sampler, output: OutputMode::Splice, window_seconds: 5.12, overlap_seconds: 1.0, batch: None, full_band: true }
    }
}

/// Where a restoration is: `window` of `windows` windows that need sampling (over all of
/// mid and side), and the sampler's step inside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Windows done.
    pub window: usize,
    pub windows: usize,
    /// Windows being sampled now, together (0 between batches).
    pub batch: usize,
    pub step: StepReport,
}

impl Progress {
    /// Fraction of the whole job done, 0..=1.
    pub fn fraction(&self) -> f64 {
        let batch = self.batch.max(1) as f64;
        (self.window as f64 + batch * self.step.completed() as f64 / self.step.total.max(1) as f64) / self.windows.max(1) as f64
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("the clip has {0} channels: only mono and stereo are supported (split it into mono or stereo files first)")]
    Channels(usize),
    #[error("the clip is {seconds:.3} s long: at least {MIN_SECONDS} s are needed")]
    TooShort { seconds: f64 },
    #[error("channel {channel} has a NaN or infinite sample at {sample}: repair or re-export the file")]
    NonFinite { channel: usize, sample: usize },
    /// A float file can hold samples up to 3e38, whose spectra overflow.
    #[error("channel {channel} has a sample of {value:e} at {sample}, far beyond full scale (±{MAX_SAMPLE} at most are taken): normalise the file")]
    OutOfRange { channel: usize, sample: usize, value: f32 },
    #[error("a region reaches {high_hz} Hz, above the model's band limit ({limit_hz} Hz): the model restores only below it; end the region's band there")]
    RegionAboveModel { high_hz: f64, limit_hz: f64 },
    #[error("no sample reaches the clip level {level}: nothing was clipped there (give the level the loudest samples sit at, or let it be detected)")]
    NothingClipped { level: f64 },
    #[error(
        "super-resolution cutoff {cutoff_hz} Hz is at or above the model's band limit ({limit_hz} Hz): the model hears and restores only \
         the band below {limit_hz} Hz, so it cannot rebuild what is missing above {cutoff_hz} Hz; --full-band on (the default) \
         continues the spectrum above the cutoff from the band below instead, without the model"
    )]
    CutoffAboveModel { cutoff_hz: f64, limit_hz: f64 },
    #[error(transparent)]
    Audio(#[from] AudioError),
    #[error(transparent)]
    Operator(#[from] OperatorError),
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Measurement(#[from] MeasurementError),
    #[error(transparent)]
    Sample(#[from] SampleError),
}

impl From<candle_core::Error> for EngineError {
    fn from(e: candle_core::Error) -> Self {
        EngineError::Sample(SampleError::Candle(e))
    }
}

/// Restore `clip` as `request` says, reporting to `observer` (which may cancel).
pub fn restore_clip<P: LatentPrior + ?Sized>(
    prior: &P,
    clip: &AudioClip,
    request: &RestoreRequest,
    observer: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<AudioClip, EngineError> {
    let (rate, frames) = output_shape(request, clip.sample_rate, clip.num_frames(), prior.sample_rate());
    let mut out = ClipWriter::new(clip.num_channels(), frames);
    let open = || Ok(Box::new(ClipReader::new(clip)) as Box<dyn FrameSource>);
    restore_stream(
        prior,
        &open,
        request,
        &mut |block| {
            out.push(block);
            Ok(())
        },
        observer,
    )?;
    Ok(out.into_clip(rate))
}

/// The rate and length of what [`restore_stream`] writes for a clip of `len` frames at `rate`.
pub fn output_shape(request: &RestoreRequest, rate: u32, len: usize, model_rate: u32) -> (u32, usize) {
    match request.output {
        OutputMode::Splice => (rate, len),
        OutputMode::Model => (model_rate, resampled_len(len, rate, model_rate)),
    }
}

/// Frames read, resampled and written at a time.
const BLOCK: usize = 1 << 16;

/// [`restore_clip`] for audio of any length: the input is read twice from `open` (a scan of
/// its samples, then the restoration, with the original beside it for the splice) and the
/// result goes to `sink` block by block, in [`output_shape`]. What is held at once is a
/// few windows and blocks per channel, whatever the clip's length.
///
/// A window's mid and side (or its one channel) are sampled with the seed
/// `seed + window index`, up to [`RestoreRequest::batch`] of them at once: the result is
/// the same whatever the batch (but for a batch one of whose items had to be retried).
pub fn restore_stream<P: LatentPrior + ?Sized>(
    prior: &P,
    open: &OpenSource<'_>,
    request: &RestoreRequest,
    sink: &mut BlockSink<'_>,
    observer: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<(), EngineError> {
    let mut input = open()?;
    let (rate, n_ch, len) = (input.sample_rate(), input.channels(), input.frames());
    if !(1..=2).contains(&n_ch) {
        return Err(EngineError::Channels(n_ch));
    }
    let seconds = len as f64 / rate as f64;
    if seconds < MIN_SECONDS {
        return Err(EngineError::TooShort { seconds });
    }
    let model_rate = prior.sample_rate();
    let splice = splice_for(request, rate, len, model_rate)?;
    let clip_level = match request.degradation {
        Degradation::Declip { level } => Some(level as f32),
        _ => None,
    };
    let (active, clipped) = scan(input.as_mut(), clip_level)?;

    let model_len = resampled_len(len, rate, model_rate);
    let window = ((request.window_seconds * model_rate as f64).round() as usize).max(1);
    let overlap = ((request.overlap_seconds * model_rate as f64).round() as usize).min(window / 2);
    let plan = windows::plan(model_len, window, overlap);
    // Inpainting's gaps, or the clipped runs, at the model's rate.
    let gaps = match &request.degradation {
        Degradation::Inpaint { gaps } => Some(gap_ranges(gaps, model_rate, model_len)?),
        Degradation::Declip { level } if clipped.is_empty() => return Err(EngineError::NothingClipped { level: *level }),
        Degradation::Declip { .. } => Some(clipped_at_rate(&clipped, rate, model_rate, model_len)),
        _ => None,
    };
    // Spectral repair's regions at the model's rate.
    let regions = match &request.degradation {
        Degradation::SpectralRepair { regions } => Some(region_ranges(regions, model_rate, model_len)?),
        _ => None,
    };
    let overlaps = |a: &Range<usize>, b: &Range<usize>| a.start < b.end && b.start < a.end;
    // A super-resolution cutoff the prior cannot reach: only the band extension works.
    let beyond_prior = matches!(request.degradation, Degradation::SuperResolution { cutoff_hz } if cutoff_hz >= model_rate as f64 / 2.0);
    let needs_sampling = |w: &Range<usize>| {
        !beyond_prior
            && gaps.as_ref().is_none_or(|g| g.iter().any(|g| overlaps(g, w)))
            && regions.as_ref().is_none_or(|r| r.iter().any(|r| overlaps(&r.samples, w)))
    };
    let parts_sampled = active.iter().filter(|&&a| a).count();
    let windows_total = plan.iter().filter(|w| needs_sampling(w)).count() * parts_sampled;
    let batch = request.batch.unwrap_or_else(|| default_batch(prior.device())).max(1);
    // Consecutive windows sampled together; inpainting's one at a time, since a window's
    // gaps are conditioned on what the one before restored in their overlap.
    let group_len = match gaps {
        Some(_) => 1,
        None => (batch / parts_sampled.max(1)).max(1),
    };
    let waiting = |done| Progress {
        window: done,
        windows: windows_total,
        batch: 0,
        step: StepReport { step: 0, total: request.sampler.steps, stage: Stage::Input, loss: None, attempt: 0 },
    };

    let mut output = Output::new(request.output, splice, open, model_len, model_rate)?;
    let mut input = open()?;
    let mut to_model = Resampler::new(active.len(), len, rate, model_rate)?;
    // From model frame `base` on: each part, with what earlier windows restored in its gaps
    // (later windows are conditioned on it), and which samples are known.
    let mut base = 0;
    let mut parts: Vec<Vec<f32>> = vec![Vec::new(); active.len()];
    let mut known: Vec<f32> = Vec::new();
    // The overlap-add of the restored windows from model frame `base` on.
    let mut joined: Vec<Vec<f32>> = vec![Vec::new(); active.len()];
    let mut done = 0;
    for start in (0..plan.len()).step_by(group_len) {
        let group = start..(start + group_len).min(plan.len());
        while base + parts[0].len() < plan[group.end - 1].end {
            if observer(&waiting(done)).is_break() {
                return Err(SampleError::Cancelled.into());
            }
            // The windows end within the input, so it cannot run out before they do.
            let block = input.next_block(BLOCK)?.ok_or(AudioError::Ended { frames: len })?;
            let block = to_model.push(&split(block))?;
            let from = base + parts[0].len();
            known.extend((from..from + block[0].len()).map(|n| if gaps.as_ref().is_some_and(|g| in_ranges(g, n)) { 0.0 } else { 1.0 }));
            parts.iter_mut().zip(block).for_each(|(p, b)| p.extend(b));
        }
        // Each window's parts: as they are, or restored (the window's seed is `seed + k`).
        let mut pieces: Vec<Vec<Vec<f32>>> = Vec::with_capacity(group.len());
        let mut items = Vec::new();
        for k in group.clone() {
            let w = &plan[k];
            let local = w.start - base..w.end - base;
            pieces.push(parts.iter().map(|part| part[local.clone()].to_vec()).collect());
            for (p, part) in parts.iter().enumerate().filter(|&(p, _)| active[p] && needs_sampling(w)) {
                let observed = Tensor::from_slice(&part[local.clone()], (1, w.len()), prior.device())?;
                let measurement = match (&gaps, clip_level) {
                    (Some(_), Some(level)) => {
                        // The clipped samples that still sit near the level: the part there
                        // went at least as far out.
                        let floor = part[local.clone()]
                            .iter()
                            .zip(&known[local.clone()])
                            .map(|(&v, &k)| if k == 0.0 && v.abs() >= FLOOR_NEAR * level { v } else { 0.0 });
                        Measurement::with_mask_and_floor(known[local.clone()].to_vec(), floor.collect(), &observed, model_rate)?
                    }
                    (Some(_), None) => Measurement::with_mask(known[local.clone()].to_vec(), &observed, model_rate)?,
                    (None, _) => match &regions {
                        Some(regions) => {
                            let local: Vec<_> = regions
                                .iter()
                                .filter(|r| overlaps(&r.samples, w))
                                .map(|r| (r.samples.start.max(w.start) - w.start..r.samples.end.min(w.end) - w.start, r.band))
                                .collect();
                            Measurement::outside_regions(&observed, &local, model_rate)?
                        }
                        None => Measurement::for_degradation(&request.degradation, &observed, model_rate, prior.device())?,
                    },
                };
                items.push((pieces.len() - 1, p, measurement, request.sampler.seed.wrapping_add(k as u64)));
            }
        }
        for chunk in items.chunks(batch) {
            let batch_items: Vec<BatchItem> = chunk.iter().map(|(_, _, measurement, seed)| BatchItem { measurement, seed: *seed }).collect();
            let samples = plan[group.start + chunk[0].0].len();
            let waves = sample_batch(prior, &batch_items, samples, &request.sampler, &mut |step| {
                observer(&Progress { window: done, windows: windows_total, batch: chunk.len(), step: *step })
            })?;
            for (row, (window, p, _, _)) in chunk.iter().enumerate() {
                pieces[*window][*p] = waves.get(row)?.to_vec1()?;
            }
            done += chunk.len();
        }
        for (k, pieces) in group.zip(pieces) {
            let local = plan[k].start - base..plan[k].end - base;
            if gaps.is_some() {
                // Inside its gaps, what this window restored counts as known from now on.
                for i in local.clone() {
                    if known[i] == 0.0 {
                        parts.iter_mut().zip(&pieces).for_each(|(p, piece)| p[i] = piece[i - local.start]);
                        known[i] = 1.0;
                    }
                }
            }
            let weights = windows::crossfade_weights(&plan, k);
            for (j, piece) in joined.iter_mut().zip(&pieces) {
                j.resize(local.end, 0.0);
                for ((o, &p), g) in j[local.clone()].iter_mut().zip(piece).zip(&weights) {
                    *o += g * p;
                }
            }
            // Nothing before the next window's start changes any more.
            let next = plan.get(k + 1).map_or(model_len, |n| n.start);
            let finished: Vec<Vec<f32>> = joined.iter_mut().map(|j| j.drain(..next - base).collect()).collect();
            output.push(&merge(finished), sink)?;
            parts.iter_mut().for_each(|p| drop(p.drain(..next - base)));
            known.drain(..next - base);
            base = next;
        }
    }
    output.finish(sink)
}

/// Mono as it is; stereo as mid and side.
fn split(block: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    match <[Vec<f32>; 2]>::try_from(block) {
        Ok([l, r]) => vec![l.iter().zip(&r).map(|(a, b)| 0.5 * (a + b)).collect(), l.iter().zip(&r).map(|(a, b)| 0.5 * (a - b)).collect()],
        Err(mono) => mono,
    }
}

/// The inverse of [`split`].
fn merge(parts: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    match <[Vec<f32>; 2]>::try_from(parts) {
        Ok([mid, side]) => vec![mid.iter().zip(&side).map(|(m, s)| m + s).collect(), mid.iter().zip(&side).map(|(m, s)| m - s).collect()],
        Err(mono) => mono,
    }
}

/// Checks every sample of the input and returns which of its [`split`] parts have sound
/// (a silent side is not restored), and with a `clip_level`, the runs of frames in which a
/// channel is clipped.
fn scan(input: &mut dyn FrameSource, clip_level: Option<f32>) -> Result<(Vec<bool>, Vec<Range<usize>>), EngineError> {
    let mut active = vec![false; input.channels()];
    let mut clipped: Vec<Range<usize>> = Vec::new();
    let mut at = 0;
    while let Some(block) = input.next_block(BLOCK)? {
        for (channel, samples) in block.iter().enumerate() {
            if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
                return Err(EngineError::NonFinite { channel, sample: at + i });
            }
        }
        if let Some((channel, i, value)) = beyond_full_scale(&block) {
            return Err(EngineError::OutOfRange { channel, sample: at + i, value });
        }
        if let Some(level) = clip_level {
            for n in (0..block[0].len()).filter(|&n| block.iter().any(|c| is_clipped(c[n], level))) {
                match clipped.last_mut() {
                    Some(run) if run.end == at + n => run.end += 1,
                    _ => clipped.push(at + n..at + n + 1),
                }
            }
        }
        at += block[0].len();
        for (a, part) in active.iter_mut().zip(split(block)) {
            *a |= part.iter().any(|&v| v != 0.0);
        }
    }
    Ok((active, clipped))
}

/// Model samples this close to a clipped run are unknown too: the resampler smears the
/// clipping's distortion over its neighbours.
const CLIP_MARGIN: usize = 2;
/// Unknown model samples at least this fraction of the clip level get a floor.
const FLOOR_NEAR: f32 = 0.9;

/// Runs of frames at `rate` as ranges at `model_rate` (widened by [`CLIP_MARGIN`], merged).
fn clipped_at_rate(runs: &[Range<usize>], rate: u32, model_rate: u32, model_len: usize) -> Vec<Range<usize>> {
    let scale = model_rate as f64 / rate as f64;
    let mut out: Vec<Range<usize>> = Vec::new();
    for run in runs {
        let start = ((run.start as f64 * scale).floor() as usize).saturating_sub(CLIP_MARGIN);
        let end = (((run.end as f64 * scale).ceil() as usize) + CLIP_MARGIN).min(model_len);
        match out.last_mut() {
            Some(last) if start <= last.end => last.end = last.end.max(end),
            _ if start < end => out.push(start..end),
            _ => {}
        }
    }
    out
}

/// Whether sorted, disjoint `ranges` hold `n`.
fn in_ranges(ranges: &[Range<usize>], n: usize) -> bool {
    let i = ranges.partition_point(|r| r.end <= n);
    ranges.get(i).is_some_and(|r| r.start <= n)
}

/// What becomes of the restored model-rate signal: written as it is (`back: None`), or
/// brought back to the input's rate and spliced into the original, read again beside it.
struct Output<'a> {
    back: Option<SpliceBack<'a>>,
}

struct SpliceBack<'a> {
    to_input: Resampler,
    original: Box<dyn FrameSource + 'a>,
    splicer: Splicer,
    /// Frames written, of the input's `len`.
    written: usize,
    len: usize,
}

impl<'a> Output<'a> {
    fn new(mode: OutputMode, splice: Splice, open: &OpenSource<'a>, model_len: usize, model_rate: u32) -> Result<Self, EngineError> {
        let back = match mode {
            OutputMode::Model => None,
            OutputMode::Splice => {
                let original = open()?;
                let (rate, channels, len) = (original.sample_rate(), original.channels(), original.frames());
                let to_input = Resampler::new(channels, model_len, model_rate, rate)?;
                Some(SpliceBack { to_input, original, splicer: Splicer::new(splice, channels, len), written: 0, len })
            }
        };
        Ok(Self { back })
    }

    fn push(&mut self, block: &[Vec<f32>], sink: &mut BlockSink<'_>) -> Result<(), EngineError> {
        match &mut self.back {
            None => Ok(sink(block)?),
            Some(back) => {
                let restored = back.to_input.push(block)?;
                back.splice(restored, sink)
            }
        }
    }

    /// Pads a restoration the rate conversions left short, and flushes the splice.
    fn finish(self, sink: &mut BlockSink<'_>) -> Result<(), EngineError> {
        if let Some(mut back) = self.back {
            let missing = vec![vec![0.0; back.len - back.written]; back.original.channels()];
            back.splice(missing, sink)?;
        }
        Ok(())
    }
}

impl SpliceBack<'_> {
    /// Splices restored frames at the input's rate; those beyond the input's length (the
    /// rate conversions round) are dropped.
    fn splice(&mut self, mut restored: Vec<Vec<f32>>, sink: &mut BlockSink<'_>) -> Result<(), EngineError> {
        let n = restored.first().map_or(0, Vec::len).min(self.len - self.written);
        restored.iter_mut().for_each(|r| r.truncate(n));
        if n == 0 {
            return Ok(());
        }
        self.written += n;
        let original = self.original.read_exact(n)?;
        let spliced = self.splicer.push(&original, &restored);
        if spliced.first().is_some_and(|s| !s.is_empty()) {
            sink(&spliced)?;
        }
        Ok(())
    }
}

/// How the restoration goes back into a clip of `len` samples at `rate`; also checks the
/// degradation against the clip and the model.
fn splice_for(request: &RestoreRequest, rate: u32, len: usize, model_rate: u32) -> Result<Splice, EngineError> {
    let degradation = &request.degradation;
    Ok(match degradation {
        Degradation::Inpaint { gaps } if request.full_band => Splice::full_band_gaps(gap_ranges(gaps, rate, len)?, rate, model_rate as f64 / 2.0),
        Degradation::Inpaint { gaps } => Splice::gaps(gap_ranges(gaps, rate, len)?, rate),
        Degradation::SuperResolution { cutoff_hz } => {
            let limit_hz = model_rate as f64 / 2.0;
            if *cutoff_hz >= limit_hz && !request.full_band {
                return Err(EngineError::CutoffAboveModel { cutoff_hz: *cutoff_hz, limit_hz });
            }
            // Checks the cutoff against the clip's own Nyquist too.
            Operator::new(degradation, rate, len, &candle_core::Device::Cpu)?;
            // Above what the prior restores (or above the cutoff, where it restores nothing),
            // the band is continued from the spectrum below.
            let extend_from = request.full_band.then_some(cutoff_hz.max(limit_hz));
            Splice::AboveCutoff { cutoff_hz: *cutoff_hz, sample_rate: rate, extend_from }
        }
        // The paper's: the band below the resampled rate's Nyquist was kept.
        Degradation::Downsample { factor } => {
            Operator::new(degradation, model_rate, len, &candle_core::Device::Cpu)?;
            Splice::AboveCutoff { cutoff_hz: model_rate as f64 / (2.0 * *factor as f64), sample_rate: rate, extend_from: None }
        }
        Degradation::Dereverb { .. } | Degradation::PhaseRetrieval { .. } => Splice::Replace,
        Degradation::Declip { level } => {
            Operator::new(degradation, rate, len, &candle_core::Device::Cpu)?;
            Splice::Clipped { level: *level as f32 }
        }
        Degradation::SpectralRepair { regions } => {
            let limit_hz = model_rate as f64 / 2.0;
            if let Some(r) = regions.iter().find(|r| r.high_hz > limit_hz) {
                return Err(EngineError::RegionAboveModel { high_hz: r.high_hz, limit_hz });
            }
            Splice::Regions { regions: region_ranges(regions, rate, len)?, sample_rate: rate }
        }
    })
}
