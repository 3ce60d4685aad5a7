//! The arithmetic of one DDIM step t → t_prev (diffusers' `DDIMScheduler.step`, ε
//! prediction), split into the pieces the guidance methods recombine.

use candle_core::{Result, Tensor};

use super::schedule::DdimSchedule;

/// ᾱ at both ends of one step and the step's noise level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DdimStep {
    /// The training timestep being left.
    pub t: usize,
    pub alpha_t: f64,
    pub alpha_prev: f64,
    /// Standard deviation of the fresh noise added by the step: `eta·σ_t`.
    pub std: f64,
}

impl DdimStep {
    /// Step `t` of a `steps`-step run with noise scale `eta` (0 = deterministic DDIM,
    /// 1 = DDPM-like ancestral sampling).
    pub fn new(schedule: &DdimSchedule, t: usize, steps: usize, eta: f64) -> Self {
        let alpha_t = schedule.alpha_cumprod(t);
        let alpha_prev = schedule.alpha_cumprod_prev(t, steps);
        let variance = (1.0 - alpha_prev) / (1.0 - alpha_t) * (1.0 - alpha_t / alpha_prev);
        Self { t, alpha_t, alpha_prev, std: eta * variance.max(0.0).sqrt() }
    }

    /// The clean-latent estimate `x0 = (z_t − √(1−ᾱ_t)·ε) / √ᾱ_t`.
    pub fn pred_x0(&self, z_t: &Tensor, eps: &Tensor) -> Result<Tensor> {
        (z_t - (eps * (1.0 - self.alpha_t).sqrt())?)? / self.alpha_t.sqrt()
    }

    /// The ε that makes `x0` the estimate at `z_t` (MPGD re-derives it after moving x0).
    pub fn eps_from_x0(&self, z_t: &Tensor, x0: &Tensor) -> Result<Tensor> {
        (z_t - (x0 * self.alpha_t.sqrt())?)? / (1.0 - self.alpha_t).sqrt()
    }

    /// The deterministic part of the step: `√ᾱ_prev·x0 + √(1 − ᾱ_prev − std²)·ε`.
    pub fn mean(&self, x0: &Tensor, eps: &Tensor) -> Result<Tensor> {
        let direction = (1.0 - self.alpha_prev - self.std * self.std).max(0.0).sqrt();
        (x0 * self.alpha_prev.sqrt())? + (eps * direction)?
    }

    /// `mean + std·noise`.
    pub fn add_noise(&self, mean: &Tensor, noise: &Tensor) -> Result<Tensor> {
        if self.std == 0.0 {
            return Ok(mean.clone());
        }
        mean + (noise * self.std)?
    }
}
