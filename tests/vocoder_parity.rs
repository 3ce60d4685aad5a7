//! The candle `SpeechT5HifiGan` against transformers (fixtures from
//! `tools/golden/make_golden.py`, a tiny random vocoder saved with `save_pretrained`):
//! the forward, and the gradient of ⟨out, cotangent⟩ with respect to the mel input. In f32
//! on the CPU the vocoder runs on the fused CPU kernels; in f64 (the finite-difference
//! test) on candle ops, the implementation every other device and dtype takes.

mod golden;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarBuilder;
use dgg_restore::model::loader::WeightFiles;
use dgg_restore::model::vocoder::{Config, SpeechT5HifiGan};
use golden::Golden;

fn load(g: &Golden) -> SpeechT5HifiGan {
    let dir = g.dir.join("vocoder");
    let cfg = Config::from_file(&dir.join("config.json")).unwrap();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F32, &golden::device()) }.unwrap();
    SpeechT5HifiGan::new(vb, &cfg).unwrap()
}

/// The same weights saved by `save_pretrained(safe_serialization=False)` (`vocoder_bin/`):
/// the PyTorch pickle path of the loader gives the same network.
#[test]
fn a_pytorch_bin_checkpoint_loads_the_same_weights() {
    let g = Golden::load();
    let dir = g.dir.join("vocoder_bin");
    let files = WeightFiles::find(&dir).unwrap();
    assert_eq!(files, WeightFiles::Pytorch(dir.join("pytorch_model.bin")));
    let cfg = Config::from_file(&dir.join("config.json")).unwrap();
    let voc = SpeechT5HifiGan::new(files.var_builder(DType::F32, &golden::device()).unwrap(), &cfg).unwrap();
    golden::assert_close("vocoder forward from .bin", &voc.forward(&g.get("voc.in")).unwrap(), &g.get("voc.out"), 1e-4);
}

#[test]
fn forward_matches_transformers() {
    let g = Golden::load();
    let voc = load(&g);
    let mel = g.get("voc.in");
    let want = g.get("voc.out");
    let (_, frames, _) = mel.dims3().unwrap();
    assert_eq!(want.dims()[1], voc.config().output_len(frames));
    let got = voc.forward(&mel).unwrap();
    golden::assert_close("vocoder forward", &got, &want, 1e-4);

    // Unbatched input gives the unbatched waveform of the first item.
    let one = voc.forward(&mel.get(0).unwrap()).unwrap();
    golden::assert_close("vocoder forward, unbatched", &one, &want.get(0).unwrap(), 1e-4);
}

#[test]
fn input_gradient_matches_transformers() {
    let g = Golden::load();
    let voc = load(&g);
    let mel = Var::from_tensor(&g.get("voc.in")).unwrap();
    let cot = g.get("voc.cotangent");
    let out = voc.forward(mel.as_tensor()).unwrap();
    let loss = (&out * &cot).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let grad = grads.get(mel.as_tensor()).expect("no gradient reached the mel input");
    golden::assert_close("vocoder forward (tracked)", &out, &g.get("voc.out"), 1e-4);
    golden::assert_close("vocoder d<out, cot>/d mel", grad, &g.get("voc.grad_in"), 1e-3);
}

/// A directional finite difference of the loss agrees with the analytic gradient (f64,
/// fixture weights): checks the whole chain, independently of the reference gradient.
#[test]
fn input_gradient_matches_finite_difference() {
    let g = Golden::load();
    let dir = g.dir.join("vocoder");
    let cfg = Config::from_file(&dir.join("config.json")).unwrap();
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[dir.join("model.safetensors")], DType::F64, &Device::Cpu) }.unwrap();
    let voc = SpeechT5HifiGan::new(vb, &cfg).unwrap();
    // On the CPU in f64 whatever DGG_DEVICE says: a finite difference needs the precision.
    let x = g.get("voc.in").to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let cot = g.get("voc.cotangent").to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let loss = |x: &Tensor| (voc.forward(x).unwrap() * &cot).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();

    let xv = Var::from_tensor(&x).unwrap();
    let l = (voc.forward(xv.as_tensor()).unwrap() * &cot).unwrap().sum_all().unwrap();
    let grad = l.backward().unwrap().get(xv.as_tensor()).unwrap().clone();
    // Direction: the cotangent-independent pattern sin(k) over the input.
    let n = x.elem_count();
    let dir = Tensor::from_vec((0..n).map(|k| ((k as f64) * 0.7).sin()).collect::<Vec<_>>(), x.dims(), &Device::Cpu).unwrap();
    let eps = 1e-5;
    let fd = (loss(&(&x + (&dir * eps).unwrap()).unwrap()) - loss(&(&x - (&dir * eps).unwrap()).unwrap())) / (2.0 * eps);
    let analytic = (&grad * &dir).unwrap().sum_all().unwrap().to_scalar::<f64>().unwrap();
    let rel = (fd - analytic).abs() / analytic.abs().max(1e-12);
    println!("directional derivative: finite difference {fd:.9e}, analytic {analytic:.9e}, relative {rel:.2e}");
    assert!(rel < 1e-5, "finite difference {fd} vs analytic {analytic}");
}
