//! The paper's operators (`experiment --protocol paper`) against torch and torchaudio, on
//! the fixtures `tools/golden/golden_paper.py` wrote for two seeds: torchaudio's resampler
//! 16 → 8 kHz with the 16 kHz loss mel on both sides, the rectangular-window STFT
//! magnitude under the mel, the random-walk responses torch's generator draws and their
//! `conv1d`, each with the gradient of the loss the guidance descends; and the LSD of the
//! official `eval.py`.
//! Values agree within 1e-4 (relative to the signal's scale), gradients within 1e-3.

use candle_core::{DType, Device, Tensor, Var};
use dgg_restore::dsp::lsd::lsd_eval_py;
use dgg_restore::dsp::mel::{LossMel, LossMelConfig};
use dgg_restore::dsp::stft::Window;
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::operators::{Degradation, ImpulseResponse, Operator};
use dgg_restore::restore::random_walk::{cross_correlate, cross_correlation, random_walk_response, RandomWalkReverb, TAPS};
use dgg_restore::restore::torch_random::TorchNormal;
use std::collections::HashMap;
use std::path::Path;

struct Case {
    tensors: HashMap<String, Tensor>,
    seed: u32,
}

impl Case {
    fn all() -> Vec<Case> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paper_operators.safetensors");
        let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
        (0..2)
            .map(|seed| {
                let prefix = format!("s{seed}.");
                let tensors = tensors.iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|k| (k.to_string(), v.clone()))).collect();
                Case { tensors, seed }
            })
            .collect()
    }

    fn get(&self, name: &str) -> Tensor {
        self.tensors.get(name).unwrap_or_else(|| panic!("seed {}: no {name} in the fixture", self.seed)).clone()
    }

    fn values(&self, name: &str) -> Vec<f32> {
        self.get(name).flatten_all().unwrap().to_vec1().unwrap()
    }

    fn scalar(&self, name: &str) -> f64 {
        self.values(name)[0] as f64
    }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// Largest difference relative to the reference's largest magnitude.
fn close(what: &str, seed: u32, got: &[f32], want: &[f32], tolerance: f32) {
    assert_eq!(got.len(), want.len(), "seed {seed}, {what}: lengths");
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let worst = got.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max) / scale;
    println!("seed {seed}, {what}: off by {worst:.1e} of its scale");
    assert!(worst <= tolerance, "seed {seed}, {what}: off by {worst:e} of its scale (at most {tolerance:e})");
}

fn close_scalar(what: &str, seed: u32, got: f64, want: f64) {
    println!("seed {seed}, {what}: {got} vs {want}, off by {:.1e}", ((got - want) / want).abs());
    assert!((got - want).abs() <= 1e-4 * want.abs(), "seed {seed}, {what}: {got} vs {want}");
}

/// `loss` of `x` and its gradient.
fn with_gradient(x: &Tensor, loss: impl Fn(&Tensor) -> Tensor) -> (f64, Vec<f32>) {
    let var = Var::from_tensor(x).unwrap();
    let value = loss(var.as_tensor());
    let grads = value.backward().unwrap();
    (value.to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap(), flat(grads.get(var.as_tensor()).unwrap()))
}

/// The loss of the paper's measurement of `x_ref` seen from `x`, and its gradient.
fn measured(case: &Case, degradation: &Degradation) -> (Measurement, f64, Vec<f32>) {
    let m = Measurement::for_degradation(degradation, &case.get("x_ref"), 16_000, &Device::Cpu).unwrap();
    let (loss, grad) = with_gradient(&case.get("x"), |x| m.loss(x).unwrap());
    (m, loss, grad)
}

#[test]
fn torchaudios_resampler_and_the_16k_mel_on_8k_audio() {
    for case in Case::all() {
        let seed = case.seed;
        let down = Degradation::Downsample { factor: 2 };
        let Operator::Decimate(resampler) = Operator::new(&down, 16_000, 8_000, &Device::Cpu).unwrap() else { panic!("the paper's operator") };
        close("kernel", seed, &resampler.kernels()[0], &case.values("resample.kernel"), 1e-6);
        let weights = case.get("resample.weights");
        let (_, grad) = with_gradient(&case.get("x"), |x| {
            let y = resampler.decimate(x).unwrap();
            close("resampled", seed, &flat(&y), &case.values("resample.y"), 1e-4);
            (y * &weights).unwrap().sum_all().unwrap()
        });
        close("resampler's adjoint", seed, &grad, &case.values("resample.grad"), 1e-3);
        let (_, loss, grad) = measured(&case, &down);
        close_scalar("loss", seed, loss, case.scalar("resample.loss"));
        close("loss gradient", seed, &grad, &case.values("resample.loss_grad"), 1e-3);
    }
}

#[test]
fn the_rectangular_stft_magnitude_under_the_mel() {
    for case in Case::all() {
        let seed = case.seed;
        let (m, loss, grad) = measured(&case, &Degradation::PhaseRetrieval { window: Window::Rectangular });
        // torch's layout is (batch, mels, frames); ours (batch, frames, mels).
        let features = m.features(&case.get("x")).unwrap();
        close("features", seed, &flat(&features.transpose(1, 2).unwrap()), &case.values("phase.features"), 1e-4);
        close_scalar("loss", seed, loss, case.scalar("phase.loss"));
        close("loss gradient", seed, &grad, &case.values("phase.loss_grad"), 1e-3);
    }
}

#[test]
fn the_random_walk_response_its_conv1d_and_a_redrawn_measurement() {
    for case in Case::all() {
        let seed = case.seed;
        // torch's generator, seeded as the fixture's: the same normals, the same walks.
        let torch = TorchNormal::new(seed as u64).randn(TAPS);
        close("normals", seed, &torch, &case.values("reverb.normals0"), 1e-6);
        let stream = RandomWalkReverb::new(seed as u64);
        let responses = ["0", "1"].map(|k| {
            let response = random_walk_response(&case.values(&format!("reverb.normals{k}")));
            close(&format!("response {k}"), seed, &response, &case.values(&format!("reverb.ir{k}")), 1e-4);
            close(&format!("drawn response {k}"), seed, &stream.next_response(), &case.values(&format!("reverb.ir{k}")), 1e-4);
            cross_correlation(&response)
        });
        let weights = case.get("reverb.weights");
        let (_, grad) = with_gradient(&case.get("x"), |x| {
            let y = cross_correlate(&responses[0], x).unwrap();
            close("conv1d", seed, &flat(&y), &case.values("reverb.y"), 1e-4);
            (y * &weights).unwrap().sum_all().unwrap()
        });
        close("conv1d's adjoint", seed, &grad, &case.values("reverb.grad"), 1e-3);
        // The measurement through the first response, the candidate through the second.
        let mel = LossMel::new(LossMelConfig::paper(Some(80.0)), &Device::Cpu).unwrap();
        let target = mel.forward(&cross_correlate(&responses[0], &case.get("x_ref")).unwrap()).unwrap();
        let (loss, grad) = with_gradient(&case.get("x"), |x| {
            let seen = mel.forward(&cross_correlate(&responses[1], x).unwrap()).unwrap();
            (seen - &target).unwrap().sqr().unwrap().sum_all().unwrap().sqrt().unwrap()
        });
        close_scalar("loss", seed, loss, case.scalar("reverb.loss"));
        close("loss gradient", seed, &grad, &case.values("reverb.loss_grad"), 1e-3);
        // The same through the paper's operator: its first response makes the measurement,
        // the guidance sees the candidate through the next.
        let room = Degradation::Dereverb { response: ImpulseResponse::RandomWalk { seed: seed as u64 } };
        let (_, loss, grad) = measured(&case, &room);
        close_scalar("operator's loss", seed, loss, case.scalar("reverb.loss"));
        close("operator's loss gradient", seed, &grad, &case.values("reverb.loss_grad"), 1e-3);
    }
}

#[test]
fn the_lsd_of_the_official_eval_py() {
    for case in Case::all() {
        let lsd = lsd_eval_py(&case.values("x_ref"), &case.values("x")).unwrap();
        close_scalar("LSD", case.seed, lsd, case.scalar("lsd.paper"));
    }
}
