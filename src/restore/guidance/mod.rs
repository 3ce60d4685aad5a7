//! The guidance methods: how one DDIM step is bent towards the measurement.
//!
//! Every per-step method sees the same things — the step ([`DdimStep`]), the latent `z_t`,
//! the UNet's ε, the clean estimate x0, the loss gradient ∂L/∂x0 (ε held constant) and a
//! fresh N(0, I) draw — and returns `z_prev`. The rules are DESIGN.md §2's. DITTO instead
//! optimises the initial noise through the whole chain ([`ditto`]).

pub mod ditto;
pub mod geodesic;

use candle_core::{Result, Tensor, Var};
use std::ops::ControlFlow;

use super::ddim::DdimStep;
use super::measurement::Measurement;
use super::prior::{DecoderStage, LatentPrior};

/// Which method, independent of its settings (the CLI's `--method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodKind {
    Dgg,
    Dps,
    Mpgd,
    Dsg,
    Ditto,
    Ddim,
}

impl MethodKind {
    pub const ALL: [MethodKind; 6] = [Self::Dgg, Self::Dps, Self::Mpgd, Self::Dsg, Self::Ditto, Self::Ddim];

    pub fn name(self) -> &'static str {
        match self {
            Self::Dgg => "dgg",
            Self::Dps => "dps",
            Self::Mpgd => "mpgd",
            Self::Dsg => "dsg",
            Self::Ditto => "ditto",
            Self::Ddim => "ddim",
        }
    }

    /// The paper's strength: DGG γ 0.08, DPS ζ 5e-4, MPGD ζ 5e-3, DSG 0.08, DITTO lr 0.5.
    pub fn default_strength(self) -> f64 {
        match self {
            Self::Dgg | Self::Dsg => 0.08,
            Self::Dps => 5e-4,
            Self::Mpgd => 5e-3,
            Self::Ditto => 0.5,
            Self::Ddim => 0.0,
        }
    }

    /// The method with `strength` (its γ, ζ or learning rate), or the paper's default.
    pub fn with_strength(self, strength: Option<f64>) -> Method {
        let s = strength.unwrap_or(self.default_strength());
        match self {
            Self::Dgg => Method::Dgg { strength: s },
            Self::Dps => Method::Dps { rate: s },
            Self::Mpgd => Method::Mpgd { rate: s },
            Self::Dsg => Method::Dsg { rate: s },
            Self::Ditto => Method::Ditto(ditto::DittoSettings { learning_rate: s, ..Default::default() }),
            Self::Ddim => Method::Ddim,
        }
    }
}

impl std::str::FromStr for MethodKind {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown method '{s}': use one of dgg, dps, mpgd, dsg, ditto, ddim"))
    }
}

impl std::fmt::Display for MethodKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A guidance method with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    /// Diffusion Geodesic Guidance: the noise is slerped towards −∇ by `strength` (γ).
    Dgg { strength: f64 },
    /// Diffusion Posterior Sampling: `z_prev = DDIM(z_t) − rate·∂L/∂z_t`.
    Dps { rate: f64 },
    /// Manifold-Preserving Guided Diffusion: x0 moves by `−rate·∂L/∂x0` before the step.
    Mpgd { rate: f64 },
    /// Spherical Gaussian constraint: the step's noise is replaced by a direction on the
    /// sphere of radius √d·σ mixing noise and descent by `rate`.
    Dsg { rate: f64 },
    /// Optimise the initial noise through a short sampling chain.
    Ditto(ditto::DittoSettings),
    /// Unguided sampling (eta 1): what the prior alone would produce.
    Ddim,
}

impl Method {
    pub fn kind(&self) -> MethodKind {
        match self {
            Self::Dgg { .. } => MethodKind::Dgg,
            Self::Dps { .. } => MethodKind::Dps,
            Self::Mpgd { .. } => MethodKind::Mpgd,
            Self::Dsg { .. } => MethodKind::Dsg,
            Self::Ditto(_) => MethodKind::Ditto,
            Self::Ddim => MethodKind::Ddim,
        }
    }

    /// DDIM's eta in the paper's runs: stochastic for DGG, DSG and plain sampling,
    /// deterministic for DPS and MPGD; DITTO's chain has its own setting.
    pub fn eta(&self) -> f64 {
        match self {
            Self::Dgg { .. } | Self::Dsg { .. } | Self::Ddim => 1.0,
            Self::Dps { .. } | Self::Mpgd { .. } => 0.0,
            Self::Ditto(d) => d.eta,
        }
    }

    /// Whether a step needs ∂L/∂x0 (and so a differentiable decode).
    pub fn needs_gradient(&self) -> bool {
        !matches!(self, Self::Ddim | Self::Ditto(_))
    }

    /// One step `z_t → z_prev`. `grad_x0` (∂L/∂x0 with ε constant) is required when
    /// [`Method::needs_gradient`]; `noise` is a fresh N(0, I) draw of `z_t`'s shape.
    pub fn step(&self, step: &DdimStep, z_t: &Tensor, eps: &Tensor, x0: &Tensor, grad_x0: Option<&Tensor>, noise: &Tensor) -> Result<Tensor> {
        let grad = || grad_x0.ok_or_else(|| candle_core::Error::Msg(format!("{:?} needs the loss gradient", self.kind())));
        // ∂L/∂z_t = ∂L/∂x0 · ∂x0/∂z_t, and ∂x0/∂z_t = 1/√ᾱ_t with ε held constant.
        let grad_z = |scale: f64| -> Result<Tensor> { grad()? * (scale / step.alpha_t.sqrt()) };
        match self {
            Self::Ddim | Self::Ditto(_) => step.add_noise(&step.mean(x0, eps)?, noise),
            Self::Dgg { strength } => {
                let mixed = geodesic::geodesic_noise(noise, &grad_z(1.0 / 1000.0)?, *strength)?;
                step.add_noise(&step.mean(x0, eps)?, &mixed)
            }
            Self::Dps { rate } => step.add_noise(&step.mean(x0, eps)?, noise)? - grad_z(*rate)?,
            Self::Mpgd { rate } => {
                let x0 = (x0 - (grad()? * *rate)?)?;
                let eps = step.eps_from_x0(z_t, &x0)?;
                step.add_noise(&step.mean(&x0, &eps)?, noise)
            }
            Self::Dsg { rate } => {
                let mean = step.mean(x0, eps)?;
                let radius = (z_t.elem_count() as f64).sqrt() * step.std;
                if radius == 0.0 {
                    return Ok(mean);
                }
                let g = grad()?;
                let descent = (g * (-radius / (geodesic::norm(g)? + 1e-8)))?;
                let sample = (noise * step.std)?;
                let mix = (&sample + ((descent - &sample)? * *rate)?)?;
                mean + (&mix * (radius / geodesic::norm(&mix)?.max(f64::MIN_POSITIVE)))?
            }
        }
    }
}

/// A point between two parts of a sampling step, where the sampler reports (and may stop).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The prior's noise prediction (DITTO: one step of its chain).
    Denoise,
    /// One stage of the prior's decoder, forward ([`LatentPrior::decoder_stages`]).
    Decode(DecoderStage),
    /// The guidance loss and its gradient with respect to the waveform.
    Loss,
    /// The gradient through one stage of the decoder.
    DecodeGradient(DecoderStage),
    /// DITTO: the gradient through one step of its chain.
    DenoiseGradient,
    /// The update: the step (DITTO: the iteration) is done.
    Step,
    /// No step under way: the engine is reading and resampling its input between windows
    /// (reported so that a long read can be cancelled too; the sampler never reports it).
    Input,
}

/// `Ok(Break(()))` when the caller stopped the computation at a stage boundary.
pub type Interruptible<T> = Result<ControlFlow<(), T>>;

/// The measurements' loss at the waveforms the batch `z` decodes to — item `i` measured by
/// `measurements[i]`, the items' losses summed, so that each item's gradient is its own
/// loss's — and its gradient with respect to `z` (a fresh leaf: nothing upstream of `z` is
/// differentiated).
///
/// The gradient goes back through the decoder one stage at a time
/// ([`LatentPrior::decoder_stages`]): each stage's graph is dropped once its gradient has
/// passed, and `stage_done` is asked after every stage whether to go on.
pub fn loss_and_gradient<P: LatentPrior + ?Sized>(
    prior: &P,
    measurements: &[&Measurement],
    z: &Tensor,
    samples: usize,
    stage_done: &mut dyn FnMut(Stage) -> ControlFlow<()>,
) -> Interruptible<(f64, Tensor)> {
    if measurements.len() != z.dim(0)? {
        candle_core::bail!("{} measurements for a batch of {}", measurements.len(), z.dim(0)?);
    }
    let stages = prior.decoder_stages();
    let mut links = Vec::with_capacity(stages.len());
    let mut x = z.detach();
    for (index, &stage) in stages.iter().enumerate() {
        let leaf = Var::from_tensor(&x)?;
        let out = prior.decode_stage(index, leaf.as_tensor(), samples)?;
        x = out.detach();
        links.push((leaf, out));
        if stage_done(Stage::Decode(stage)).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    let wave = Var::from_tensor(&x)?;
    let loss = match measurements {
        [one] => one.loss(wave.as_tensor())?,
        _ => {
            let losses = measurements.iter().enumerate().map(|(i, m)| m.loss(&wave.as_tensor().narrow(0, i, 1)?)).collect::<Result<Vec<_>>>()?;
            Tensor::stack(&losses, 0)?.sum_all()?
        }
    };
    let mut grad = gradient(&loss.backward()?, &wave)?;
    let loss = loss.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?;
    if stage_done(Stage::Loss).is_break() {
        return Ok(ControlFlow::Break(()));
    }
    for (&stage, (leaf, out)) in stages.iter().zip(links).rev() {
        // ∂⟨out, g⟩/∂x is the vector-Jacobian product that carries g one stage back.
        grad = gradient(&(out * &grad)?.sum_all()?.backward()?, &leaf)?;
        if stage_done(Stage::DecodeGradient(stage)).is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue((loss, grad)))
}

/// The gradient of `leaf` in `grads`, zero when nothing reached it.
fn gradient(grads: &candle_core::backprop::GradStore, leaf: &Var) -> Result<Tensor> {
    match grads.get(leaf.as_tensor()) {
        Some(g) => Ok(g.clone()),
        None => leaf.zeros_like(),
    }
}
