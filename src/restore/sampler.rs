//! Restoring one model-length window: the guided DDIM loop over a [`LatentPrior`], with
//! progress, cancellation and a guard against runs that blow up.

use candle_core::{DType, Result as CandleResult, Tensor};
use std::ops::ControlFlow;

use super::ddim::DdimStep;
use super::guidance::ditto::Chain;
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
        let mut noise = NoiseSource::new(settings.seed, attempt as u64);
        let result = match &settings.method {
            Method::Ditto(_) => ditto(prior, measurement, samples, settings, attempt, &mut noise, observer),
            _ => guided(prior, measurement, samples, settings, attempt, &mut noise, observer),
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

fn initial_latent<P: LatentPrior + ?Sized>(prior: &P, samples: usize, noise: &mut NoiseSource) -> CandleResult<Tensor> {
    let (c, h, w) = prior.latent_shape(samples);
    noise.draw((1, c, h, w), prior.device())
}

fn guided<P: LatentPrior + ?Sized>(
    prior: &P,
    measurement: &Measurement,
    samples: usize,
    settings: &SamplerSettings,
    attempt: usize,
    noise: &mut NoiseSource,
    observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<Tensor, Attempt> {
    let method = &settings.method;
    let schedule = prior.schedule();
    let timesteps = schedule.timesteps(settings.steps);
    let total = timesteps.len();
    let mut z = initial_latent(prior, samples, noise)?;
    for (i, &t) in timesteps.iter().enumerate() {
        let step = DdimStep::new(schedule, t, total, method.eta());
        let eps = prior.predict_noise(&z, &[t])?;
        let x0 = step.pred_x0(&z, &eps)?;
        let (loss, grad) = if method.needs_gradient() {
            let (loss, grad) = loss_and_gradient(&x0, |x0| measurement.loss(&prior.decode(x0, samples)?))?;
            (Some(loss), Some(grad))
        } else {
            (None, None)
        };
        let fresh = noise.draw(z.shape(), prior.device())?;
        z = method.step(&step, &z, &eps, &x0, grad.as_ref(), &fresh)?;
        if loss.is_some_and(|l| !l.is_finite()) || !finite(&z)? {
            return Err(Attempt::NonFinite { step: i + 1 });
        }
        if observer(&StepReport { step: i + 1, total, loss, attempt }).is_break() {
            return Err(Attempt::Cancelled);
        }
    }
    let wave = prior.decode(&z, samples)?;
    if !finite(&wave)? {
        return Err(Attempt::NonFinite { step: total });
    }
    Ok(wave)
}

fn ditto<P: LatentPrior + ?Sized>(
    prior: &P,
    measurement: &Measurement,
    samples: usize,
    settings: &SamplerSettings,
    attempt: usize,
    noise: &mut NoiseSource,
    observer: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
) -> Result<Tensor, Attempt> {
    let Method::Ditto(ditto) = &settings.method else { unreachable!("dispatched on the method") };
    let chain = Chain::new(prior, ditto.chain_steps);
    let mut z_start = initial_latent(prior, samples, noise)?;
    for i in 0..ditto.iterations {
        let trajectory = chain.run(prior, &z_start)?;
        let end = trajectory.last().expect("a chain has an end");
        let (loss, grad_end) = loss_and_gradient(end, |z0| measurement.loss(&prior.decode(z0, samples)?))?;
        let grad = chain.pull_back(prior, &trajectory, &grad_end)?;
        z_start = (&z_start - (grad * ditto.learning_rate)?)?;
        if !loss.is_finite() || !finite(&z_start)? {
            return Err(Attempt::NonFinite { step: i + 1 });
        }
        if observer(&StepReport { step: i + 1, total: ditto.iterations, loss: Some(loss), attempt }).is_break() {
            return Err(Attempt::Cancelled);
        }
    }
    let end = chain.run(prior, &z_start)?.pop().expect("a chain has an end");
    let wave = prior.decode(&end, samples)?;
    if !finite(&wave)? {
        return Err(Attempt::NonFinite { step: ditto.iterations });
    }
    Ok(wave)
}
