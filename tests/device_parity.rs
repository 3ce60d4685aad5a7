//! The GPU against the CPU: the same prior, settings and seed sampled on both (the noise is
//! drawn on the CPU and copied, so both see the same draws). Needs a GPU: run by
//! `tools/gpu/check.sh` with `DGG_DEVICE=cuda`, ignored otherwise.

mod golden;

use candle_core::{DType, Device, Tensor};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::sampler::{sample_batch, BatchItem, SamplerSettings};
use golden::Golden;
use std::ops::ControlFlow;

/// A stereo-like batch of two inpainting windows, sampled on the CPU and on `DGG_DEVICE`.
#[test]
#[ignore = "needs a GPU: DGG_DEVICE=cuda, run by tools/gpu/check.sh"]
fn sampling_on_the_gpu_follows_the_cpu() {
    let device = golden::device();
    assert!(device.is_cuda(), "set DGG_DEVICE=cuda");
    let g = Golden::load();
    let dir = g.copy_dir();
    let samples = 8000;
    let wave: Vec<f32> = (0..samples).map(|k| (0.3 * (k as f64 * 0.0873).sin()) as f32).collect();
    let mut mask = vec![1f32; samples];
    mask[3000..4600].fill(0.0);
    let run = |options: &LoadOptions, method: MethodKind| -> Tensor {
        let prior = AudioLdm2::load_for_prompt(dir.path(), options, "", 1.0).unwrap_or_else(|e| panic!("{e}"));
        let observed = Tensor::from_slice(&wave, (1, samples), &options.device).unwrap();
        let m = Measurement::with_mask(mask.clone(), &observed, 16_000).unwrap();
        let items = [BatchItem { measurement: &m, seed: 1 }, BatchItem { measurement: &m, seed: 2 }];
        let settings = SamplerSettings::new(method.with_strength(None), 2, 0);
        sample_batch(&prior, &items, samples, &settings, &mut |_| ControlFlow::Continue(())).unwrap().to_device(&Device::Cpu).unwrap()
    };
    let cpu = LoadOptions { device: Device::Cpu, dtype: DType::F32 };
    // DDIM carries the kernels' rounding (TF32 on the GPU) least; DGG's normalised gradient
    // more (see tests/batching.rs).
    for (method, tolerance) in [(MethodKind::Ddim, 1e-3), (MethodKind::Dgg, 1e-2)] {
        let (on_cpu, on_gpu) = (run(&cpu, method), run(&golden::load_options(), method));
        let diff: f32 = (on_cpu - on_gpu).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap();
        println!("{method}: GPU vs CPU max difference {diff:.3e}");
        assert!(diff <= tolerance, "{method}: the GPU differs from the CPU by {diff}");
    }
}
