//! The DDIM noise schedule, as diffusers' `DDIMScheduler` defines it for a model.
//!
//! Only the schedule lives here (ᾱ_t, the inference timesteps, ᾱ of the previous step);
//! the update rules that use it belong to the guidance methods.

use serde::Deserialize;
use std::path::Path;

use crate::config::{read_config, ConfigError};

/// The fields of `scheduler/scheduler_config.json` the schedule depends on.
#[derive(Debug, Clone, Deserialize)]
pub struct SchedulerConfig {
    pub num_train_timesteps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: String,
    #[serde(default)]
    pub set_alpha_to_one: bool,
    #[serde(default)]
    pub steps_offset: usize,
    #[serde(default = "leading")]
    pub timestep_spacing: String,
    #[serde(default = "epsilon")]
    pub prediction_type: String,
    #[serde(default)]
    pub trained_betas: Option<Vec<f64>>,
    #[serde(default)]
    pub rescale_betas_zero_snr: bool,
    #[serde(default)]
    pub thresholding: bool,
    #[serde(default)]
    pub clip_sample: bool,
}

fn leading() -> String {
    "leading".into()
}
fn epsilon() -> String {
    "epsilon".into()
}

/// How inference timesteps are spread over the training range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spacing {
    Leading,
    Trailing,
    Linspace,
}

#[derive(Debug, Clone)]
pub struct DdimSchedule {
    alphas_cumprod: Vec<f64>,
    final_alpha_cumprod: f64,
    spacing: Spacing,
    steps_offset: usize,
}

/// The most training timesteps a schedule may have: far above any published model's, far
/// below what would exhaust memory.
const MAX_TRAIN_TIMESTEPS: usize = 1_000_000;

impl DdimSchedule {
    /// Read and check `scheduler_config.json`.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let cfg: SchedulerConfig = read_config(path)?;
        Self::new(&cfg, path)
    }

    /// `path` is only used in error messages.
    pub fn new(cfg: &SchedulerConfig, path: &Path) -> Result<Self, ConfigError> {
        let unsupported = |field, value: &dyn std::fmt::Debug, why: &str| ConfigError::unsupported(path, field, value, why);
        if cfg.prediction_type != "epsilon" {
            return Err(unsupported("prediction_type", &cfg.prediction_type, "only epsilon prediction is implemented"));
        }
        for (field, on) in [("rescale_betas_zero_snr", cfg.rescale_betas_zero_snr), ("thresholding", cfg.thresholding), ("clip_sample", cfg.clip_sample)] {
            if on {
                return Err(unsupported(field, &on, "not implemented; set it to false"));
            }
        }
        let n = cfg.num_train_timesteps;
        if !(2..=MAX_TRAIN_TIMESTEPS).contains(&n) {
            return Err(unsupported("num_train_timesteps", &n, &format!("needs 2 to {MAX_TRAIN_TIMESTEPS} steps (AudioLDM2 has 1000)")));
        }
        // diffusers builds the betas in float32; do the same so ᾱ matches to the last bit
        // that matters, then accumulate in f64.
        let betas: Vec<f32> = match (&cfg.trained_betas, cfg.beta_schedule.as_str()) {
            (Some(b), _) if b.len() == n => b.iter().map(|&v| v as f32).collect(),
            (Some(b), _) => return Err(unsupported("trained_betas", &b.len(), "length differs from num_train_timesteps")),
            (None, "linear") => linspace(cfg.beta_start as f32, cfg.beta_end as f32, n),
            (None, "scaled_linear") => linspace((cfg.beta_start as f32).sqrt(), (cfg.beta_end as f32).sqrt(), n).iter().map(|b| b * b).collect(),
            (None, other) => return Err(unsupported("beta_schedule", &other, "use linear or scaled_linear")),
        };
        // Each step must add some noise and keep some signal, ᾱ falling from 1 towards 0.
        if let Some((i, b)) = betas.iter().enumerate().find(|(_, b)| !(**b > 0.0 && **b < 1.0)) {
            let field = if cfg.trained_betas.is_some() { "trained_betas" } else { "beta_start/beta_end" };
            return Err(unsupported(field, &b, &format!("beta {i} must lie strictly between 0 and 1")));
        }
        if cfg.trained_betas.is_none() && cfg.beta_start > cfg.beta_end {
            return Err(unsupported("beta_start", &cfg.beta_start, "must not exceed beta_end (the noise grows with the step)"));
        }
        if cfg.steps_offset >= n {
            return Err(unsupported("steps_offset", &cfg.steps_offset, "must be below num_train_timesteps (AudioLDM2 uses 1)"));
        }
        let mut alphas_cumprod = Vec::with_capacity(n);
        let mut acc = 1f32;
        for b in betas {
            acc *= 1.0 - b;
            alphas_cumprod.push(acc as f64);
        }
        let spacing = match cfg.timestep_spacing.as_str() {
            "leading" => Spacing::Leading,
            "trailing" => Spacing::Trailing,
            "linspace" => Spacing::Linspace,
            other => return Err(unsupported("timestep_spacing", &other, "use leading, trailing or linspace")),
        };
        let final_alpha_cumprod = if cfg.set_alpha_to_one { 1.0 } else { alphas_cumprod[0] };
        Ok(Self { alphas_cumprod, final_alpha_cumprod, spacing, steps_offset: cfg.steps_offset })
    }

    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    pub fn num_train_timesteps(&self) -> usize {
        self.alphas_cumprod.len()
    }

    /// The inference timesteps for `steps` steps, largest first (`set_timesteps`).
    pub fn timesteps(&self, steps: usize) -> Vec<usize> {
        let t = self.num_train_timesteps();
        let steps = steps.clamp(1, t);
        match self.spacing {
            Spacing::Leading => {
                let ratio = t / steps;
                (0..steps).rev().map(|i| i * ratio + self.steps_offset).collect()
            }
            Spacing::Trailing => {
                let ratio = t as f64 / steps as f64;
                (0..steps).map(|i| ((t as f64 - i as f64 * ratio).round() as usize).saturating_sub(1)).collect()
            }
            Spacing::Linspace => (0..steps).rev().map(|i| (i as f64 * (t - 1) as f64 / (steps - 1).max(1) as f64).round() as usize).collect(),
        }
    }

    /// ᾱ at `t`.
    pub fn alpha_cumprod(&self, t: usize) -> f64 {
        self.alphas_cumprod[t.min(self.alphas_cumprod.len() - 1)]
    }

    /// ᾱ of the step after `t` in a run of `steps` steps (diffusers' `prev_timestep`):
    /// `t − T/steps`, or the final ᾱ past the start of the schedule.
    pub fn alpha_cumprod_prev(&self, t: usize, steps: usize) -> f64 {
        let stride = self.num_train_timesteps() / steps.max(1);
        match t.checked_sub(stride) {
            Some(prev) => self.alpha_cumprod(prev),
            None => self.final_alpha_cumprod,
        }
    }
}

fn linspace(a: f32, b: f32, n: usize) -> Vec<f32> {
    // torch.linspace: start + i·step for the first half, end − (n−1−i)·step for the rest.
    let step = (b - a) / (n - 1) as f32;
    (0..n).map(|i| if i < n / 2 { a + step * i as f32 } else { b - step * (n - 1 - i) as f32 }).collect()
}
