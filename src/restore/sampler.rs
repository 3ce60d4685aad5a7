//! Restoring model-length windows: the guided DDIM loop over a [`LatentPrior`], with
//! progress, cancellation and a guard against runs that blow up.
//!
//! A batch of windows runs as one (B, C, H, W) latent, so that the networks see the whole
//! batch at once (what a GPU needs to be busy). Everything DGG measures — the loss, its
//! gradient, the noise's norm and angle — stays per item: item `i` of a batch follows
//! exactly the path it would follow alone.

use candle_core::{DType, Result as CandleResult, Tensor};
use std::ops::ControlFlow;

use super::ddim::DdimStep;
use super::guidance::ditto::{DittoSettings, Iterations};
use super::guidance::{loss_and_gradient, Method, Stage};
use super::measurement::Measurement;
use super::noise::NoiseSource;
use super::prior::{LatentPrior, Part};

/// How to sample one window.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerSettings {
    pub method: Method,
    /// DDIM steps (DITTO's chain length and iterations are in its settings).
    pub steps: usize,
    pub seed: u64,
    /// How many times a window that went non-finite is restarted from fresh noise.
    pub retries: usize,
}

/// A preview's DDIM steps (and DITTO's chain steps and iterations), at most.
pub const PREVIEW_STEPS: usize = 25;
const PREVIEW_DITTO_ITERATIONS: usize = 10;

impl SamplerSettings {
    pub fn new(method: Method, steps: usize, seed: u64) -> Self {
        Self { method, steps, seed, retries: 2 }
    }

    /// The same settings and seed in a few tens of steps: where the full render is
    /// heading, in a fraction of its time.
    pub fn preview(&self) -> Self {
        let method = match &self.method {
            Method::Ditto(d) => Method::Ditto(DittoSettings {
                chain_steps: d.chain_steps.min(PREVIEW_STEPS),
                iterations: d.iterations.min(PREVIEW_DITTO_ITERATIONS),
                ..d.clone()
            }),
            other => other.clone(),
        };
        Self { method, steps: self.steps.min(PREVIEW_STEPS), ..self.clone() }
    }
}

/// Where a window's sampling is, reported after every stage of a step (every DITTO
/// iteration), so that a run can stop within a step that takes long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The step under way, 1-based.
    pub step: usize,
    pub total: usize,
    /// What has just been done; [`Stage::Step`] ends the step.
    pub stage: Stage,
    /// The guidance loss at this step's x0 (a batch's: the sum of its windows'), for
    /// methods that compute it (known from [`Stage::Loss`] on).
    pub loss: Option<f64>,
    /// 0 for the first try, then the restart count.
    pub attempt: usize,
}

impl StepReport {
    /// Steps finished.
    pub fn completed(&self) -> usize {
        if self.stage == Stage::Step {
            self.step
        } else {
            self.step.saturating_sub(1)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("cancelled")]
    Cancelled,
    #[error(
        "the sampler produced NaN or infinite values {attempts} times in a row (last at step {step}); \
         lower the guidance strength, or try another seed or device"
    )]
    NonFinite { attempts: usize, step: usize },
    /// A network gave NaN or infinity for an input of ordinary size: the model is broken,
    /// whatever the input or the settings.
    #[error(
        "the model's {part} gave NaN or infinite values at step {step} for an ordinary input: \
         its weights are broken; download them again"
    )]
    BrokenModel { part: String, step: usize },
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

/// What went wrong inside one attempt.
enum Attempt {
    Cancelled,
    NonFinite { step: usize },
    BrokenModel { part: String, step: usize },
    Failed(candle_core::Error),
}

impl From<candle_core::Error> for Attempt {
    fn from(e: candle_core::Error) -> Self {
        Attempt::Failed(e)
    }
}

/// The value, or [`Attempt::Cancelled`] when the observer stopped the run.
fn proceed<T>(flow: ControlFlow<(), T>) -> Result<T, Attempt> {
    match flow {
        ControlFlow::Continue(v) => Ok(v),
        ControlFlow::Break(()) => Err(Attempt::Cancelled),
    }
}

fn finite(x: &Tensor) -> CandleResult<bool> {
    Ok(x.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite())
}

/// The root mean square of a latent, far below this in any sane run (about 1): a network
/// that overflows on a latent this small is broken, not pushed too far by the guidance.
const ORDINARY_LATENT_RMS: f64 = 100.0;

fn ordinary(z: &Tensor) -> CandleResult<bool> {
    let rms = (z.sqr()?.mean_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?).sqrt();
    Ok(rms < ORDINARY_LATENT_RMS)
}

/// `Err` when the output the prior's `part` computed from the latent `z` is not finite
/// (`out_finite` false): blamed on the model when `z` was ordinary, else on the run.
fn check_output<P: LatentPrior + ?Sized>(prior: &P, part: Part, out_finite: bool, z: &Tensor, step: usize) -> Result<(), Attempt> {
    if out_finite {
        Ok(())
    } else if ordinary(z)? {
        Err(Attempt::BrokenModel { part: prior.describe(part), step })
    } else {
        Err(Attempt::NonFinite { step })
    }
}

/// Sample a window of `samples` samples guided by `measurement`, with `settings.seed`;
/// returns (1, samples).
///
/// `observer` sees every stage of every step and may stop the run
/// (→ [`SampleError::Cancelled`]). Same prior, settings and seed on the same device give
/// the same output.
pub fn sample<P: LatentPrior + ?Sized>(
    prior: &P,
    measurement: &Measurement,
    samples: usize,
    settings: &SamplerSettings,
    observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<Tensor, SampleError> {
    sample_batch(prior, &[BatchItem { measurement, seed: settings.seed }], samples, settings, observer)
}

/// One window of a batch: its own measurement and the seed of its own noise.
#[derive(Debug, Clone, Copy)]
pub struct BatchItem<'a> {
    pub measurement: &'a Measurement,
    pub seed: u64,
}

/// [`sample`] for a batch of windows of `samples` samples at once; returns (B, samples),
/// row `i` what `items[i]` gives alone (`settings.seed` is not used: each item has its
/// seed). The whole batch is restarted when any item goes non-finite, so a batch that
/// needed a retry differs from its items sampled one by one.
pub fn sample_batch<P: LatentPrior + ?Sized>(
    prior: &P,
    items: &[BatchItem],
    samples: usize,
    settings: &SamplerSettings,
    observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<Tensor, SampleError> {
    if items.is_empty() {
        return Err(candle_core::Error::Msg("sample_batch: an empty batch".into()).into());
    }
    let measurements: Vec<&Measurement> = items.iter().map(|item| item.measurement).collect();
    let mut last_step = 0;
    for attempt in 0..=settings.retries {
        let run = Window { prior, measurements: &measurements, samples, settings, attempt };
        let mut noise = BatchNoise(items.iter().map(|item| NoiseSource::new(item.seed, attempt as u64)).collect());
        let result = match &settings.method {
            Method::Ditto(ditto) => run.ditto(ditto, &mut noise, observer),
            _ => run.guided(&mut noise, observer),
        };
        match result {
            Ok(wave) => return Ok(wave),
            Err(Attempt::Cancelled) => return Err(SampleError::Cancelled),
            Err(Attempt::Failed(e)) => return Err(e.into()),
            Err(Attempt::BrokenModel { part, step }) => return Err(SampleError::BrokenModel { part, step }),
            Err(Attempt::NonFinite { step }) => last_step = step,
        }
    }
    Err(SampleError::NonFinite { attempts: settings.retries + 1, step: last_step })
}

/// The noise of a batch: item `i` draws from its own source, as it would alone.
struct BatchNoise(Vec<NoiseSource>);

impl BatchNoise {
    /// (B, C, H, W) draws, item by item.
    fn draw(&mut self, (c, h, w): (usize, usize, usize), device: &candle_core::Device) -> CandleResult<Tensor> {
        let values: Vec<f32> = self.0.iter_mut().flat_map(|source| source.values(c * h * w)).collect();
        Tensor::from_vec(values, (self.0.len(), c, h, w), device)
    }
}

/// One attempt at sampling one batch of windows.
struct Window<'a, P: ?Sized> {
    prior: &'a P,
    measurements: &'a [&'a Measurement],
    samples: usize,
    settings: &'a SamplerSettings,
    attempt: usize,
}

impl<P: LatentPrior + ?Sized> Window<'_, P> {
    fn initial_latent(&self, noise: &mut BatchNoise) -> CandleResult<Tensor> {
        noise.draw(self.prior.latent_shape(self.samples), self.prior.device())
    }

    /// Tell `observer` that `stage` of `step` is done; stop if it says so.
    fn stage_done(
        &self,
        step: usize,
        total: usize,
        stage: Stage,
        loss: Option<f64>,
        observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        observer(&StepReport { step, total, stage, loss, attempt: self.attempt })
    }

    /// The loss of the waveform `z` decodes to and its gradient with respect to `z`,
    /// reporting each stage of `step`.
    fn loss_and_gradient(
        &self,
        z: &Tensor,
        step: usize,
        total: usize,
        observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> Result<(f64, Tensor), Attempt> {
        let mut done = |stage| self.stage_done(step, total, stage, None, observer);
        let (loss, grad) = proceed(loss_and_gradient(self.prior, self.measurements, z, self.samples, &mut done)?)?;
        // The measurement is finite and bounded: a loss that is not comes from the decoder.
        check_output(self.prior, Part::Decoder, loss.is_finite(), z, step)?;
        Ok((loss, grad))
    }

    /// Report a finished step (stopping if asked to), after checking it stayed finite.
    fn report(
        &self,
        step: usize,
        total: usize,
        loss: Option<f64>,
        z: &Tensor,
        observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> Result<(), Attempt> {
        if loss.is_some_and(|l| !l.is_finite()) || !finite(z)? {
            return Err(Attempt::NonFinite { step });
        }
        proceed(self.stage_done(step, total, Stage::Step, loss, observer))
    }

    fn decode(&self, z: &Tensor, step: usize) -> Result<Tensor, Attempt> {
        let wave = self.prior.decode(z, self.samples)?;
        check_output(self.prior, Part::Decoder, finite(&wave)?, z, step)?;
        Ok(wave)
    }

    fn guided(&self, noise: &mut BatchNoise, observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>) -> Result<Tensor, Attempt> {
        let (prior, method) = (self.prior, &self.settings.method);
        let schedule = prior.schedule();
        let timesteps = schedule.timesteps(self.settings.steps);
        let total = timesteps.len();
        let mut z = self.initial_latent(noise)?;
        for (i, &t) in timesteps.iter().enumerate() {
            let step = DdimStep::new(schedule, t, total, method.eta());
            let eps = prior.predict_noise(&z, &[t])?;
            check_output(prior, Part::NoisePredictor, finite(&eps)?, &z, i + 1)?;
            proceed(self.stage_done(i + 1, total, Stage::Denoise, None, observer))?;
            let x0 = step.pred_x0(&z, &eps)?;
            let (loss, grad) = match method.needs_gradient() {
                true => self.loss_and_gradient(&x0, i + 1, total, observer).map(|(l, g)| (Some(l), Some(g)))?,
                false => (None, None),
            };
            let fresh = noise.draw(prior.latent_shape(self.samples), prior.device())?;
            z = per_item(self.measurements.len(), |item| {
                let grad = grad.as_ref().map(item).transpose()?;
                method.step(&step, &item(&z)?, &item(&eps)?, &item(&x0)?, grad.as_ref(), &item(&fresh)?)
            })?;
            self.report(i + 1, total, loss, &z, observer)?;
        }
        self.decode(&z, total)
    }

    fn ditto(&self, ditto: &DittoSettings, noise: &mut BatchNoise, observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>) -> Result<Tensor, Attempt> {
        let z_start = self.initial_latent(noise)?;
        let (shape, device) = (self.prior.latent_shape(self.samples), self.prior.device());
        let end = ditto.optimise(self.prior, z_start, &mut || noise.draw(shape, device), &mut DittoRun { window: self, observer })?;
        self.decode(&end, ditto.iterations)
    }
}

/// DITTO's loop seen from one attempt: its stages reported, its loss and checks the
/// attempt's.
struct DittoRun<'w, 'o, P: ?Sized> {
    window: &'w Window<'w, P>,
    observer: &'o mut dyn FnMut(&StepReport) -> ControlFlow<()>,
}

impl<P: LatentPrior + ?Sized> Iterations for DittoRun<'_, '_, P> {
    type Error = Attempt;

    fn stage_done(&mut self, i: usize, total: usize, stage: Stage, loss: Option<f64>) -> ControlFlow<()> {
        self.window.stage_done(i, total, stage, loss, self.observer)
    }

    fn stopped(&self) -> Attempt {
        Attempt::Cancelled
    }

    fn loss_and_gradient(&mut self, z0: &Tensor, i: usize, total: usize) -> Result<(f64, Tensor), Attempt> {
        self.window.loss_and_gradient(z0, i, total, self.observer)
    }

    fn iteration_done(&mut self, i: usize, total: usize, loss: f64, z_start: &Tensor) -> Result<(), Attempt> {
        self.window.report(i, total, Some(loss), z_start, self.observer)
    }
}

/// `f` applied to each item of a batch of `b`, the results stacked again: the guidance
/// methods measure norms and angles over a whole tensor, which must be one item's. `f`
/// gets a function that cuts an item out of a batch tensor.
fn per_item(b: usize, f: impl Fn(&dyn Fn(&Tensor) -> CandleResult<Tensor>) -> CandleResult<Tensor>) -> CandleResult<Tensor> {
    if b == 1 {
        return f(&|t: &Tensor| Ok(t.clone()));
    }
    let items = (0..b).map(|i| f(&|t: &Tensor| t.narrow(0, i, 1))).collect::<CandleResult<Vec<_>>>()?;
    Tensor::cat(&items, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::guidance::MethodKind;

    #[test]
    fn a_preview_keeps_everything_but_the_steps() {
        let full = SamplerSettings::new(MethodKind::Dgg.with_strength(Some(0.1)), 500, 7);
        assert_eq!(full.preview(), SamplerSettings { steps: PREVIEW_STEPS, ..full.clone() });
        let short = SamplerSettings::new(Method::Ddim, 10, 7);
        assert_eq!(short.preview(), short, "already short");
        let ditto = SamplerSettings::new(MethodKind::Ditto.with_strength(None), 100, 7);
        let Method::Ditto(d) = ditto.preview().method else { panic!() };
        assert_eq!((d.chain_steps, d.iterations, d.learning_rate), (20, PREVIEW_DITTO_ITERATIONS, 0.5));
    }
}
