//! Single sampler steps against the reference (tools/golden/golden_guidance.py): the DDIM
//! timesteps, and one DGG, MPGD and DPS step on the fixture's tiny VAE and vocoder with an
//! inpainting loss, ε given (no UNet).

mod golden;

use candle_core::Tensor;
use dgg_restore::dsp::mel::{LossMel, LossMelConfig};
use dgg_restore::dsp::stft::StftConfig;
use dgg_restore::model::audioldm2::AudioLdm2;
use dgg_restore::model::text::Conditioning;
use dgg_restore::restore::ddim::DdimStep;
use dgg_restore::restore::guidance::geodesic::geodesic_noise;
use dgg_restore::restore::guidance::{loss_and_gradient, Method};
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::operators::Operator;
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::schedule::DdimSchedule;
use golden::{assert_close, relative_error, Golden};
use std::ops::ControlFlow;

const VALUE_TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 5e-4;
const STEPS: usize = 50;

fn schedule(g: &Golden) -> DdimSchedule {
    DdimSchedule::from_file(&g.dir.join("scheduler/scheduler_config.json")).unwrap()
}

#[test]
fn ddim_schedule_and_timesteps_match_set_timesteps() {
    let g = Golden::load();
    let s = schedule(&g);
    let want = g.get("ddim.alphas_cumprod").to_vec1::<f32>().unwrap();
    let err = s.alphas_cumprod().iter().zip(&want).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
    assert!(err < 1e-6, "ᾱ max abs error {err}");
    for n in [500, 200, 50] {
        let want: Vec<usize> = g.get(&format!("ddim.timesteps_{n}")).to_vec1::<f32>().unwrap().iter().map(|&t| t as usize).collect();
        assert_eq!(s.timesteps(n), want, "{n} steps");
    }
}

/// Everything one step needs, read from `dgg.step.*`.
struct StepCase {
    prior: AudioLdm2,
    step: DdimStep,
    z_t: Tensor,
    eps: Tensor,
    noise: Tensor,
    measurement: Measurement,
    wave_len: usize,
}

impl StepCase {
    fn load(g: &Golden, eta: f64) -> Self {
        // Any conditioning of the right widths: the step never runs the UNet.
        let item = |name: &str| g.get(&format!("unet.b1.{name}")).narrow(0, 0, 1).unwrap();
        let conditioning = Conditioning {
            encoder_hidden_states: item("encoder_hidden_states"),
            encoder_hidden_states_1: item("encoder_hidden_states_1"),
            attention_mask_1: None,
        };
        let prior = AudioLdm2::load(&g.dir, &golden::load_options(), &conditioning).unwrap_or_else(|e| panic!("{e}"));
        let schedule = schedule(g);
        let (t, t_prev) = (g.scalar("dgg.step.t") as usize, g.scalar("dgg.step.t_prev") as usize);
        let timesteps = schedule.timesteps(STEPS);
        let i = timesteps.iter().position(|&x| x == t).expect("t is an inference timestep");
        assert_eq!(timesteps[i + 1], t_prev, "t_prev follows t");
        let step = DdimStep::new(&schedule, t, STEPS, eta);
        assert_eq!(step.alpha_prev, schedule.alpha_cumprod(t_prev));

        let wave_len = g.scalar("dgg.step.wave_len") as usize;
        let mel = LossMel::new(
            LossMelConfig {
                sample_rate: g.scalar("dgg.step.sample_rate") as u32,
                stft: StftConfig { n_fft: g.scalar("dgg.step.n_fft") as usize, hop: g.scalar("dgg.step.hop") as usize },
                n_mels: g.scalar("dgg.step.n_mels") as usize,
                clamp: None,
            },
            prior.device(),
        )
        .unwrap();
        let measurement = Measurement::new(Operator::Mask { mask: g.wave("dgg.step.mask") }, mel, &g.wave("dgg.step.y")).unwrap();
        Self { prior, step, z_t: g.get("dgg.step.z_t"), eps: g.get("dgg.step.eps"), noise: g.get("dgg.step.noise"), measurement, wave_len }
    }

    fn x0(&self) -> Tensor {
        self.step.pred_x0(&self.z_t, &self.eps).unwrap()
    }

    /// L at x0 and ∂L/∂x0 (ε held constant), through the tiny VAE and vocoder.
    fn loss_and_grad_x0(&self) -> (f64, Tensor) {
        match loss_and_gradient(&self.prior, &[&self.measurement], &self.x0(), self.wave_len, &mut |_| ControlFlow::Continue(())).unwrap() {
            ControlFlow::Continue(value) => value,
            ControlFlow::Break(()) => unreachable!("nothing stops it"),
        }
    }

    fn step(&self, method: &Method, grad_x0: &Tensor) -> Tensor {
        method.step(&self.step, &self.z_t, &self.eps, &self.x0(), Some(grad_x0), &self.noise).unwrap()
    }
}

fn assert_scalar(what: &str, got: f64, want: f64, tol: f64) {
    let err = (got - want).abs() / want.abs();
    assert!(err < tol, "{what}: {got} vs {want} (relative error {err:.2e})");
    eprintln!("{what}: relative error {err:.2e}");
}

#[test]
fn one_dgg_step_matches_the_reference() {
    let g = Golden::load();
    let case = StepCase::load(&g, g.scalar("dgg.step.eta"));
    assert_close("dgg x0", &case.x0(), &g.get("dgg.step.pred_original_sample"), VALUE_TOL);
    let (loss, grad_x0) = case.loss_and_grad_x0();
    assert_scalar("dgg loss", loss, g.scalar("dgg.step.loss"), VALUE_TOL);
    // grad = ∂(L/1000)/∂z_t = ∂L/∂x0 / (1000·√ᾱ_t)
    let grad_z = (&grad_x0 / (1000.0 * case.step.alpha_t.sqrt())).unwrap();
    assert_close("dgg grad", &grad_z, &g.get("dgg.step.grad"), GRAD_TOL);
    let gamma = g.scalar("dgg.step.gamma");
    assert_close("dgg mixed noise", &geodesic_noise(&case.noise, &grad_z, gamma).unwrap(), &g.get("dgg.step.mixed"), GRAD_TOL);
    let prev = case.step(&Method::Dgg { strength: gamma }, &grad_x0);
    assert_close("dgg prev_sample", &prev, &g.get("dgg.step.prev_sample"), VALUE_TOL);
}

/// The part of a step the guidance is responsible for, `prev − plain DDIM`, must match
/// the reference's on its own: it moves `prev_sample` by only 1e-4..1e-3 relative, which
/// a tolerance on `prev_sample` alone would not see.
fn assert_guidance_delta(what: &str, prev: &Tensor, want_prev: &Tensor, plain: &Tensor, tol: f64) {
    let got = (prev - plain).unwrap();
    let want = (want_prev - plain).unwrap();
    let err = relative_error(&got, &want);
    assert!(err < tol, "{what}: guidance delta relative error {err:.2e}");
    eprintln!("{what}: guidance delta relative error {err:.2e}");
}

#[test]
fn one_mpgd_step_matches_the_reference() {
    let g = Golden::load();
    let case = StepCase::load(&g, g.scalar("mpgd.step.eta"));
    assert_close("mpgd x0", &case.x0(), &g.get("mpgd.step.pred_original_sample"), VALUE_TOL);
    let (loss, grad_x0) = case.loss_and_grad_x0();
    assert_scalar("mpgd loss", loss, g.scalar("mpgd.step.loss"), VALUE_TOL);
    assert_close("mpgd grad_x0", &grad_x0, &g.get("mpgd.step.grad_x0"), GRAD_TOL);
    let rate = g.scalar("mpgd.step.rate");
    let x0_updated = (case.x0() - (&grad_x0 * rate).unwrap()).unwrap();
    assert_close("mpgd x0_updated", &x0_updated, &g.get("mpgd.step.x0_updated"), VALUE_TOL);
    let prev = case.step(&Method::Mpgd { rate }, &grad_x0);
    assert_close("mpgd prev_sample", &prev, &g.get("mpgd.step.prev_sample"), VALUE_TOL);
    assert_guidance_delta("mpgd", &prev, &g.get("mpgd.step.prev_sample"), &g.get("dps.step.ddim_prev_sample"), 1e-2);
}

#[test]
fn one_dps_step_matches_the_reference() {
    let g = Golden::load();
    let case = StepCase::load(&g, g.scalar("dps.step.eta"));
    assert_close("dps x0", &case.x0(), &g.get("dps.step.pred_original_sample"), VALUE_TOL);
    let (loss, grad_x0) = case.loss_and_grad_x0();
    assert_scalar("dps loss", loss, g.scalar("dps.step.loss"), VALUE_TOL);
    let grad_z = (&grad_x0 / case.step.alpha_t.sqrt()).unwrap();
    assert_close("dps grad", &grad_z, &g.get("dps.step.grad"), GRAD_TOL);
    let plain = case.step(&Method::Ddim, &grad_x0);
    assert_close("dps ddim_prev_sample", &plain, &g.get("dps.step.ddim_prev_sample"), VALUE_TOL);
    let rate = g.scalar("dps.step.rate");
    let prev = case.step(&Method::Dps { rate }, &grad_x0);
    assert_close("dps prev_sample", &prev, &g.get("dps.step.prev_sample"), VALUE_TOL);
    assert_guidance_delta("dps", &prev, &g.get("dps.step.prev_sample"), &g.get("dps.step.ddim_prev_sample"), 1e-2);
}
