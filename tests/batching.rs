//! Batched sampling on the fixture's tiny AudioLDM2: windows sampled together give what
//! each gives alone, which holds only if every item keeps its own measurement, noise, loss
//! gradient, norm and angle (DGG's geometry is per item, never over the batch).

mod golden;

use candle_core::{Device, Tensor};
use dgg_restore::audio::AudioClip;
use dgg_restore::engine::{restore_clip, RestoreRequest};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::restore::guidance::ditto::DittoSettings;
use dgg_restore::restore::guidance::{loss_and_gradient, Method, MethodKind};
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::noise::NoiseSource;
use dgg_restore::restore::operators::{Degradation, Gap};
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::sampler::{sample, sample_batch, BatchItem, SamplerSettings};
use golden::Golden;
use std::ops::ControlFlow;

fn prior(g: &Golden) -> (AudioLdm2, tempfile::TempDir) {
    // A scratch copy: the null prompt's conditioning cache is written into it.
    let dir = g.copy_dir();
    let prior = AudioLdm2::load_for_prompt(dir.path(), &LoadOptions::default(), "", 1.0).unwrap_or_else(|e| panic!("{e}"));
    (prior, dir)
}

/// `n` samples of a chord whose notes depend on `seed`, at 16 kHz.
fn chord(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|k| {
            let t = k as f64 / 16_000.0;
            let f = 110.0 * (1 + seed) as f64;
            (0.3 * (2.0 * std::f64::consts::PI * f * t).sin() + 0.1 * (2.0 * std::f64::consts::PI * 3.1 * f * t).sin()) as f32
        })
        .collect()
}

/// The UNet's products round differently for a batch (by about 1e-6: its kernels block
/// the batch's rows differently). Plain DDIM keeps that at 1e-5; DGG's and DSG's normalised
/// gradients and DITTO's chain carry it further, more with every step over random weights
/// (1e-2 after four DGG steps), so the comparisons run two steps and allow 1e-3. Two items
/// mixed up, or one seed for another, differ by tenths. The gradients, where DGG's geometry
/// starts, are compared exactly.
const STEPS: usize = 2;
const TOLERANCE: f32 = 1e-3;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar().unwrap()
}

/// Two windows with different measurements (a gap in one, a low-pass in the other) and
/// seeds, batched and alone, for every method.
#[test]
fn each_item_of_a_batch_follows_its_own_path() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let samples = 8000;
    let observed = |seed| Tensor::from_vec(chord(samples, seed), (1, samples), &Device::Cpu).unwrap();
    let mut mask = vec![1f32; samples];
    mask[3000..4600].fill(0.0);
    let gapped = (observed(0) * Tensor::from_slice(&mask, (1, samples), &Device::Cpu).unwrap()).unwrap();
    let measurements = [
        Measurement::with_mask(mask, &gapped, 16_000).unwrap(),
        Measurement::for_degradation(&Degradation::SuperResolution { cutoff_hz: 2000.0 }, &observed(1), 16_000, &Device::Cpu).unwrap(),
    ];
    let items = [BatchItem { measurement: &measurements[0], seed: 3 }, BatchItem { measurement: &measurements[1], seed: 7 }];
    let ditto = Method::Ditto(DittoSettings { iterations: 1, chain_steps: 2, ..Default::default() });
    let methods = [MethodKind::Dgg, MethodKind::Dps, MethodKind::Mpgd, MethodKind::Dsg, MethodKind::Ddim].map(|k| k.with_strength(None));
    for method in methods.into_iter().chain([ditto]) {
        let settings = SamplerSettings::new(method.clone(), STEPS, 0);
        let batched = sample_batch(&prior, &items, samples, &settings, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(batched.dims(), &[2, samples]);
        for (i, item) in items.iter().enumerate() {
            let alone = sample(&prior, item.measurement, samples, &SamplerSettings { seed: item.seed, ..settings.clone() }, &mut |_| ControlFlow::Continue(()))
                .unwrap();
            let scale: f32 = alone.abs().unwrap().max_all().unwrap().to_scalar().unwrap();
            let diff = max_abs_diff(&batched.narrow(0, i, 1).unwrap(), &alone);
            // DITTO moves its start by a gradient through the chain, scaled by 1/√ᾱ_T ≈ 15.
            let tolerance = if method.kind() == MethodKind::Ditto { 10.0 * TOLERANCE } else { TOLERANCE };
            assert!(diff <= tolerance * scale.max(1.0), "{:?}, item {i}: batched differs from alone by {diff} (scale {scale})", method.kind());
        }
    }
}

/// The loss gradient of a batch is, item by item, exactly each item's own.
#[test]
fn a_batch_gradient_is_each_items_own() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let samples = 8000;
    let (c, h, w) = prior.latent_shape(samples);
    let z = NoiseSource::new(1, 0).draw((2, c, h, w), &Device::Cpu).unwrap();
    let observed = Tensor::from_vec(chord(samples, 0), (1, samples), &Device::Cpu).unwrap();
    let mut mask = vec![1f32; samples];
    mask[3000..4600].fill(0.0);
    let m0 = Measurement::with_mask(mask, &observed, 16_000).unwrap();
    let m1 = Measurement::with_mask(vec![1f32; samples], &(observed * 0.5).unwrap(), 16_000).unwrap();
    let go_on = &mut |_| ControlFlow::Continue(());
    let ControlFlow::Continue((loss, grad)) = loss_and_gradient(&prior, &[&m0, &m1], &z, samples, go_on).unwrap() else { unreachable!() };
    let mut total = 0.0;
    for (i, m) in [&m0, &m1].into_iter().enumerate() {
        let ControlFlow::Continue((l, g)) = loss_and_gradient(&prior, &[m], &z.narrow(0, i, 1).unwrap(), samples, go_on).unwrap() else { unreachable!() };
        assert_eq!(max_abs_diff(&grad.narrow(0, i, 1).unwrap(), &g), 0.0, "item {i}");
        total += l;
    }
    assert!((loss - total).abs() <= 1e-9 * total, "the batch's loss {loss} is the sum of its items' {total}");
}

/// A stereo clip of several windows restored with its windows batched and one at a time.
#[test]
fn a_batched_restoration_is_the_unbatched_one() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let n = 40_000;
    let clip = AudioClip::new(16_000, vec![chord(n, 0), chord(n, 2)]);
    for degradation in
        [Degradation::SuperResolution { cutoff_hz: 3000.0 }, Degradation::Inpaint { gaps: vec![Gap { start: 0.5, end: 0.7 }, Gap { start: 1.9, end: 2.0 }] }]
    {
        let mut request = RestoreRequest::new(degradation, SamplerSettings::new(MethodKind::Dgg.with_strength(None), STEPS, 5));
        request.window_seconds = 1.0;
        request.overlap_seconds = 0.25;
        let restore = |request: &RestoreRequest| {
            let mut batches = Vec::new();
            let out = restore_clip(&prior, &clip, request, &mut |p| {
                batches.push(p.batch);
                ControlFlow::Continue(())
            })
            .unwrap();
            (out, batches.into_iter().max().unwrap())
        };
        let (alone, largest) = restore(&request);
        assert_eq!(largest, 1);
        request.batch = Some(6);
        let (batched, largest) = restore(&request);
        let inpainting = matches!(request.degradation, Degradation::Inpaint { .. });
        // Super-resolution batches three windows of mid and side; inpainting a window's two.
        assert_eq!(largest, if inpainting { 2 } else { 6 });
        for (a, b) in alone.channels.iter().zip(&batched.channels) {
            let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(diff <= TOLERANCE, "{:?}: batched differs by {diff}", request.degradation);
        }
    }
}
