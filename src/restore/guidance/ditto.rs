//! DITTO: a short sampling chain from an initial noise, the gradient of a loss on its end
//! with respect to that noise, and the outer loop that descends it
//! ([`DittoSettings::optimise`]). Our chain is deterministic (eta 0), so each iteration
//! descends one function; the paper's runs used eta 1, fresh noise at every step of every
//! iteration (`experiment --protocol paper`).
//!
//! The gradient runs back through every UNet call of the chain. Keeping the whole graph
//! of 20 UNet calls would need tens of GB at full size, so the chain is checkpointed:
//! the forward pass keeps only the latents between steps, and the backward pass recomputes
//! one step at a time with its graph and pulls the adjoint through it (one UNet graph in
//! memory at a time, one extra UNet forward per step).

use candle_core::{Result, Tensor, Var};
use std::ops::ControlFlow;

use super::{gradient, Interruptible, Stage};
use crate::restore::ddim::DdimStep;
use crate::restore::prior::LatentPrior;

/// DITTO's settings; the defaults are the paper's (20 steps × 100 iterations, SGD lr 0.5)
/// but for the chain's eta, 0 (the paper's runs: 1).
#[derive(Debug, Clone, PartialEq)]
pub struct DittoSettings {
    pub chain_steps: usize,
    pub iterations: usize,
    pub learning_rate: f64,
    /// The chain's noise scale: 0 deterministic, 1 fresh noise at every step.
    pub eta: f64,
}

impl Default for DittoSettings {
    fn default() -> Self {
        Self { chain_steps: 20, iterations: 100, learning_rate: 0.5, eta: 0.0 }
    }
}

/// What DITTO's outer loop asks of the sampler that runs it.
pub trait Iterations {
    type Error: From<candle_core::Error>;
    /// `stage` of iteration `i` (1-based, of `total`) is done; `Break` stops the loop.
    fn stage_done(&mut self, i: usize, total: usize, stage: Stage, loss: Option<f64>) -> ControlFlow<()>;
    /// The error of a loop stopped by [`Iterations::stage_done`].
    fn stopped(&self) -> Self::Error;
    /// The loss on the chain's end `z0` and its gradient with respect to `z0`.
    fn loss_and_gradient(&mut self, z0: &Tensor, i: usize, total: usize) -> std::result::Result<(f64, Tensor), Self::Error>;
    /// Iteration `i` is done, `z_start` the updated noise: check it and report.
    fn iteration_done(&mut self, i: usize, total: usize, loss: f64, z_start: &Tensor) -> std::result::Result<(), Self::Error>;
}

impl DittoSettings {
    /// DITTO's outer loop: `iterations` steps of SGD on the initial noise `z_start`, each
    /// through the whole chain and back; returns the end (z_0) of the chain from the
    /// optimised noise. `noise` draws a latent's worth of fresh noise for a chain with eta.
    pub fn optimise<P: LatentPrior + ?Sized, I: Iterations>(
        &self,
        prior: &P,
        mut z_start: Tensor,
        noise: &mut dyn FnMut() -> Result<Tensor>,
        it: &mut I,
    ) -> std::result::Result<Tensor, I::Error> {
        let chain = Chain::new(prior, self.chain_steps, self.eta);
        let total = self.iterations;
        for i in 1..=total {
            let run = chain.run(prior, &z_start, noise, &mut |stage| it.stage_done(i, total, stage, None))?;
            let ControlFlow::Continue(trajectory) = run else { return Err(it.stopped()) };
            let (loss, grad_end) = it.loss_and_gradient(trajectory.last().expect("a chain has an end"), i, total)?;
            let pulled = chain.pull_back(prior, &trajectory, &grad_end, &mut |stage| it.stage_done(i, total, stage, Some(loss)))?;
            let ControlFlow::Continue(grad) = pulled else { return Err(it.stopped()) };
            z_start = (&z_start - (grad * self.learning_rate)?)?;
            it.iteration_done(i, total, loss, &z_start)?;
        }
        // The final chain runs after the last report: it can no longer be stopped halfway.
        let end = chain.run(prior, &z_start, noise, &mut |_| ControlFlow::Continue(()))?;
        let ControlFlow::Continue(mut trajectory) = end else { unreachable!("never stopped") };
        Ok(trajectory.pop().expect("a chain has an end"))
    }
}

/// The DDIM chain of `steps` steps with noise scale `eta`.
pub struct Chain {
    steps: Vec<DdimStep>,
}

impl Chain {
    pub fn new<P: LatentPrior + ?Sized>(prior: &P, steps: usize, eta: f64) -> Self {
        let schedule = prior.schedule();
        let steps = schedule.timesteps(steps).into_iter().map(|t| DdimStep::new(schedule, t, steps, eta)).collect();
        Self { steps }
    }

    fn step<P: LatentPrior + ?Sized>(step: &DdimStep, prior: &P, z: &Tensor, differentiable: bool) -> Result<Tensor> {
        let eps = if differentiable { prior.predict_noise_differentiable(z, &[step.t])? } else { prior.predict_noise(z, &[step.t])? };
        step.mean(&step.pred_x0(z, &eps)?, &eps)
    }

    /// Every latent of the chain from `z_start`, the start first and z_0 last, each step
    /// with fresh `noise` where it has any; `stage_done(Stage::Denoise)` is asked after
    /// every step whether to go on.
    pub fn run<P: LatentPrior + ?Sized>(
        &self,
        prior: &P,
        z_start: &Tensor,
        noise: &mut dyn FnMut() -> Result<Tensor>,
        stage_done: &mut dyn FnMut(Stage) -> ControlFlow<()>,
    ) -> Interruptible<Vec<Tensor>> {
        let mut trajectory = vec![z_start.detach()];
        for step in &self.steps {
            let mut z = Self::step(step, prior, trajectory.last().expect("starts non-empty"), false)?;
            if step.std > 0.0 {
                z = step.add_noise(&z, &noise()?)?;
            }
            trajectory.push(z);
            if stage_done(Stage::Denoise).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(trajectory))
    }

    /// ∂(loss)/∂z_start, given the `trajectory` from [`Chain::run`] and ∂(loss)/∂z_0 (a
    /// step's noise is added, so it leaves the adjoint alone);
    /// `stage_done(Stage::DenoiseGradient)` is asked after every step whether to go on.
    pub fn pull_back<P: LatentPrior + ?Sized>(
        &self,
        prior: &P,
        trajectory: &[Tensor],
        grad_end: &Tensor,
        stage_done: &mut dyn FnMut(Stage) -> ControlFlow<()>,
    ) -> Interruptible<Tensor> {
        let mut adjoint = grad_end.clone();
        for (step, z) in self.steps.iter().zip(trajectory).rev() {
            let leaf = Var::from_tensor(z)?;
            let next = Self::step(step, prior, leaf.as_tensor(), true)?;
            adjoint = gradient(&(next * &adjoint)?.sum_all()?.backward()?, &leaf)?;
            if stage_done(Stage::DenoiseGradient).is_break() {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(adjoint))
    }
}
