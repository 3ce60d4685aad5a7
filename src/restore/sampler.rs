//! Restoring one model-length window: the guided DDIM loop over a [`LatentPrior`], with
//! progress, cancellation and a guard against runs that blow up.

use candle_core::{DType, Result as CandleResult, Tensor};
use std::ops::ControlFlow;

use super::ddim::DdimStep;
use super::guidance::ditto::{Chain, DittoSettings};
use super::guidance::{loss_and_gradient, Method};
use super::measurement::Measurement;
use super::noise::NoiseSource;
use super::prior::LatentPrior;

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

impl SamplerSettings {
    pub fn new(method: Method, steps: usize, seed: u64) -> Self {
        Self { method, steps, seed, retries: 2 }
    }
}

/// Where a window's sampling is, reported after every step (every DITTO iteration).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// 1-based.
    pub step: usize,
    pub total: usize,
    /// The guidance loss at this step's x0, for methods that compute it.
    pub loss: Option<f64>,
    /// 0 for the first try, then the restart count.
    pub attempt: usize,
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
    #[error("{0}")]
    Candle(#[from] candle_core::Error),
}

/// What went wrong inside one attempt.
enum Attempt {
    Cancelled,
    NonFinite { step: usize },
    Failed(candle_core::Error),
}

impl From<candle_core::Error> for Attempt {
    fn from(e: candle_core::Error) -> Self {
        Attempt::Failed(e)
    }
}

fn finite(x: &Tensor) -> CandleResult<bool> {
    Ok(x.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite())
}

/// Sample a window of `samples` samples guided by `measurement`; returns (1, samples).
///
/// `observer` sees every step and may stop the run (→ [`SampleError::Cancelled`]). Same
/// prior, settings and seed on the same device give the same output.
pub fn sample<P: LatentPrior + ?Sized>(
    prior: &P,
    measurement: &Measurement,
    samples: usize,
    settings: &SamplerSettings,
    observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<Tensor, SampleError> {
    let mut last_step = 0;
    for attempt in 0..=settings.retries {
        let run = Window { prior, measurement, samples, settings, attempt };
        let mut noise = NoiseSource::new(settings.seed, attempt as u64);
        let result = match &settings.method {
            Method::Ditto(ditto) => run.ditto(ditto, &mut noise, observer),
            _ => run.guided(&mut noise, observer),
        };
        match result {
            Ok(wave) => return Ok(wave),
            Err(Attempt::Cancelled) => return Err(SampleError::Cancelled),
            Err(Attempt::Failed(e)) => return Err(e.into()),
            Err(Attempt::NonFinite { step }) => last_step = step,
        }
    }
    Err(SampleError::NonFinite { attempts: settings.retries + 1, step: last_step })
}

/// One attempt at sampling one window.
struct Window<'a, P: ?Sized> {
    prior: &'a P,
    measurement: &'a Measurement,
    samples: usize,
    settings: &'a SamplerSettings,
    attempt: usize,
}

impl<P: LatentPrior + ?Sized> Window<'_, P> {
    fn initial_latent(&self, noise: &mut NoiseSource) -> CandleResult<Tensor> {
        let (c, h, w) = self.prior.latent_shape(self.samples);
        noise.draw((1, c, h, w), self.prior.device())
    }

    /// The loss of the waveform `z` decodes to, and its gradient with respect to `z`.
    fn loss_and_gradient(&self, z: &Tensor) -> CandleResult<(f64, Tensor)> {
        loss_and_gradient(z, |z| self.measurement.loss(&self.prior.decode(z, self.samples)?))
    }

    /// Report a finished step (stopping if asked to), after checking it stayed finite.
    fn report(&self, step: usize, total: usize, loss: Option<f64>, z: &Tensor, observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>) -> Result<(), Attempt> {
        if loss.is_some_and(|l| !l.is_finite()) || !finite(z)? {
            return Err(Attempt::NonFinite { step });
        }
        match observer(&StepReport { step, total, loss, attempt: self.attempt }) {
            ControlFlow::Break(()) => Err(Attempt::Cancelled),
            ControlFlow::Continue(()) => Ok(()),
        }
    }

    fn decode(&self, z: &Tensor, step: usize) -> Result<Tensor, Attempt> {
        let wave = self.prior.decode(z, self.samples)?;
        if !finite(&wave)? {
            return Err(Attempt::NonFinite { step });
        }
        Ok(wave)
    }

    fn guided(&self, noise: &mut NoiseSource, observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>) -> Result<Tensor, Attempt> {
        let (prior, method) = (self.prior, &self.settings.method);
        let schedule = prior.schedule();
        let timesteps = schedule.timesteps(self.settings.steps);
        let total = timesteps.len();
        let mut z = self.initial_latent(noise)?;
        for (i, &t) in timesteps.iter().enumerate() {
            let step = DdimStep::new(schedule, t, total, method.eta());
            let eps = prior.predict_noise(&z, &[t])?;
            let x0 = step.pred_x0(&z, &eps)?;
            let (loss, grad) = match method.needs_gradient() {
                true => self.loss_and_gradient(&x0).map(|(l, g)| (Some(l), Some(g)))?,
                false => (None, None),
            };
            let fresh = noise.draw(z.shape(), prior.device())?;
            z = method.step(&step, &z, &eps, &x0, grad.as_ref(), &fresh)?;
            self.report(i + 1, total, loss, &z, observer)?;
        }
        self.decode(&z, total)
    }

    fn ditto(&self, ditto: &DittoSettings, noise: &mut NoiseSource, observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>) -> Result<Tensor, Attempt> {
        let chain = Chain::new(self.prior, ditto.chain_steps);
        let mut z_start = self.initial_latent(noise)?;
        for i in 0..ditto.iterations {
            let trajectory = chain.run(self.prior, &z_start)?;
            let (loss, grad_end) = self.loss_and_gradient(trajectory.last().expect("a chain has an end"))?;
            let grad = chain.pull_back(self.prior, &trajectory, &grad_end)?;
            z_start = (&z_start - (grad * ditto.learning_rate)?)?;
            self.report(i + 1, ditto.iterations, Some(loss), &z_start, observer)?;
        }
        let end = chain.run(self.prior, &z_start)?.pop().expect("a chain has an end");
        self.decode(&end, ditto.iterations)
    }
}
