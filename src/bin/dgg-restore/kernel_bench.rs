//! `dgg-restore bench kernels`: the CPU convolution kernels at the full-size networks'
//! shapes, forward and adjoint, in GFLOP/s: where a step's time goes, shape by shape.

use anyhow::{bail, Result};
use clap::Args;
use dgg_restore::kernels::conv1d::{Conv1d, ConvTranspose1d};
use dgg_restore::kernels::conv2d::Conv2d;
use dgg_restore::kernels::Activation1d;
use std::time::Instant;

#[derive(Args)]
pub struct KernelBenchArgs {
    /// Runs per shape; the fastest is reported.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Only shapes whose description contains this.
    #[arg(long)]
    only: Option<String>,
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 2654435761 + seed * 40503) % 2001) as f32 / 1000.0 - 1.0).collect()
}

fn fastest(repeats: usize, mut run: impl FnMut()) -> f64 {
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn line(what: &str, flops: f64, forward: f64, adjoint: f64) {
    println!("{what:<44} {:>8.1} {:>9.1} {:>10.1} {:>10.1}", forward * 1e3, adjoint * 1e3, flops / forward / 1e9, flops / adjoint / 1e9);
}

pub fn run(args: KernelBenchArgs) -> Result<()> {
    if args.repeats == 0 {
        bail!("--repeats must be positive");
    }
    let wanted = |what: &str| args.only.as_deref().is_none_or(|o| what.contains(o));
    println!("{} threads; fastest of {}", candle_core::utils::get_num_threads(), args.repeats);
    println!("{:<44} {:>8} {:>9} {:>10} {:>10}", "shape", "fwd (ms)", "adj (ms)", "fwd GF/s", "adj GF/s");
    // The vocoder's resblock convolutions (full size, 5.12 s): channels and samples per stage.
    for (c, l) in [(512, 2560), (256, 10240), (128, 20480), (64, 40960), (32, 81920)] {
        for (k, d) in [(3, 1), (11, 5)] {
            let what = format!("conv1d {c}ch × {l}, k {k} d {d}");
            if !wanted(&what) {
                continue;
            }
            let conv = Conv1d::new(&values(c * c * k, 1), Some(values(c, 2)), (c, c, k), d * (k - 1) / 2, d);
            let (x, mut y) = (values(c * l, 3), vec![0f32; c * l]);
            let forward = fastest(args.repeats, || conv.forward(&x, l, Activation1d::LeakyRelu(0.1), Some(&x), &mut y));
            let adjoint = fastest(args.repeats, || conv.input_grad(&x, l, &mut y));
            line(&what, 2.0 * (c * c * k * l) as f64, forward, adjoint);
        }
    }
    for (c_in, k, s, l) in [(1024, 16, 5, 512), (512, 16, 4, 2560), (256, 8, 2, 10240), (128, 4, 2, 20480), (64, 4, 2, 40960)] {
        let what = format!("conv_transpose1d {c_in}→{} × {l}, k {k} s {s}", c_in / 2);
        if !wanted(&what) {
            continue;
        }
        let c_out = c_in / 2;
        let conv = ConvTranspose1d::new(&values(c_in * c_out * k, 1), Some(values(c_out, 2)), (c_in, c_out, k), (k - s) / 2, 0, s);
        let l_out = conv.out_len(l).expect("fits");
        let (x, mut y) = (values(c_in * l, 3), vec![0f32; c_out * l_out]);
        let forward = fastest(args.repeats, || conv.forward(&x, l, Activation1d::LeakyRelu(0.1), &mut y));
        let (g, mut gx) = (values(c_out * l_out, 4), vec![0f32; c_in * l]);
        let adjoint = fastest(args.repeats, || conv.input_grad(&g, l, &mut gx));
        line(&what, 2.0 * (c_in * c_out * k * l) as f64, forward, adjoint);
    }
    // The UNet's 3×3 convolutions (its four levels, latent 128 × 16; one with the skip
    // concatenated on the way up), then the VAE decoder's (latent 128 × 16 → mel 512 × 64).
    let unet = [(128, 128, 128, 16), (256, 256, 64, 8), (512, 256, 64, 8), (384, 384, 32, 4), (640, 640, 16, 2)];
    let vae =
        [(512, 512, 128, 16), (512, 512, 256, 32), (512, 256, 256, 32), (256, 256, 256, 32), (256, 256, 512, 64), (256, 128, 512, 64), (128, 128, 512, 64)];
    for (c_in, c_out, h, w) in unet.into_iter().chain(vae) {
        let what = format!("conv2d 3×3 {c_in}→{c_out} × {h}×{w}");
        if !wanted(&what) {
            continue;
        }
        let conv = Conv2d::new(values(c_out * c_in * 9, 1), Some(values(c_out, 2)), (c_out, c_in, 3, 3), 1, 1);
        let (x, mut y) = (values(c_in * h * w, 3), vec![0f32; c_out * h * w]);
        let forward = fastest(args.repeats, || conv.forward(&x, (h, w), &mut y));
        let (g, mut gx) = (values(c_out * h * w, 4), vec![0f32; c_in * h * w]);
        let adjoint = fastest(args.repeats, || conv.input_grad(&g, (h, w), &mut gx));
        line(&what, 2.0 * (c_in * c_out * 9 * h * w) as f64, forward, adjoint);
    }
    Ok(())
}
