//! FIR filtering by FFT convolution, as a candle op with an exact backward pass.
//!
//! Degradation operators convolve with long kernels (a room impulse response is thousands
//! of taps; a sharp low-pass hundreds) over long signals: candle's `conv1d` would build an
//! im2col matrix of samples × taps. Filtering is linear, so the backward pass is the
//! adjoint filter: the same kernel reversed, with the complementary delay.

use candle_core::{bail, CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor};
use realfft::num_complex::Complex32;
use realfft::RealFftPlanner;
use std::sync::Arc;

/// `y[n] = Σ_k taps[k] · x[n + delay − k]` for `n` in `0..len(x)`, with `x` zero outside.
/// `delay = 0` is a causal filter (reverb); `delay = (taps − 1)/2` a zero-phase one.
#[derive(Debug, Clone)]
pub struct FirFilter {
    taps: Arc<Vec<f32>>,
    delay: usize,
}

impl FirFilter {
    pub fn new(taps: Vec<f32>, delay: usize) -> Self {
        assert!(!taps.is_empty() && delay < taps.len(), "FIR needs taps and a delay inside them");
        Self { taps: Arc::new(taps), delay }
    }

    pub fn taps(&self) -> &[f32] {
        &self.taps
    }

    /// The transpose of this filter as a linear map.
    fn adjoint(&self) -> Self {
        let reversed: Vec<f32> = self.taps.iter().rev().copied().collect();
        Self { delay: self.taps.len() - 1 - self.delay, taps: Arc::new(reversed) }
    }

    /// Filter every row of a (…, samples) f32 tensor on any device (the FFTs run on the CPU).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let device = x.device().clone();
        let on_cpu = x.to_device(&Device::Cpu)?.contiguous()?;
        on_cpu.apply_op1(self.clone())?.to_device(&device)
    }

    /// Filter one signal.
    pub fn filter(&self, x: &[f32]) -> Vec<f32> {
        let (n, k) = (x.len(), self.taps.len());
        if n == 0 {
            return Vec::new();
        }
        let size = (n + k - 1).next_power_of_two();
        let mut planner = RealFftPlanner::<f32>::new();
        let (fwd, inv) = (planner.plan_fft_forward(size), planner.plan_fft_inverse(size));
        let spectrum = |signal: &[f32]| -> Vec<Complex32> {
            let mut padded = vec![0f32; size];
            padded[..signal.len()].copy_from_slice(signal);
            let mut out = fwd.make_output_vec();
            fwd.process(&mut padded, &mut out).expect("sizes come from the plan");
            out
        };
        let mut product: Vec<Complex32> = spectrum(x).iter().zip(spectrum(&self.taps)).map(|(a, b)| a * b).collect();
        // c2r needs exactly real DC and Nyquist bins; rounding can leave a tiny imaginary part.
        product[0].im = 0.0;
        if let Some(last) = product.last_mut() {
            last.im = 0.0;
        }
        let mut full = vec![0f32; size];
        inv.process(&mut product, &mut full).expect("sizes come from the plan");
        let scale = 1.0 / size as f32;
        (0..n).map(|i| full[i + self.delay] * scale).collect()
    }
}

/// [`FirFilter::filter`] over a signal that arrives in blocks (the same output to
/// rounding): it holds the filter's span plus one FFT block, not the signal.
#[derive(Debug)]
pub struct FirStream {
    filter: FirFilter,
    /// Length of the whole signal.
    len: usize,
    /// The input from sample `start` on.
    history: Vec<f32>,
    start: usize,
    received: usize,
    /// The next output sample.
    next: usize,
}

impl FirStream {
    /// A stream through `filter` for a signal of `len` samples in all.
    pub fn new(filter: FirFilter, len: usize) -> Self {
        Self { filter, len, history: Vec::new(), start: 0, received: 0, next: 0 }
    }

    /// Feeds the next samples and returns the output they complete: the outputs of all
    /// calls together are the `len` samples of the filtered signal.
    pub fn push(&mut self, x: &[f32]) -> Vec<f32> {
        let (taps, delay) = (self.filter.taps.len(), self.filter.delay);
        self.history.extend_from_slice(x);
        self.received += x.len();
        // Output `n` needs input up to `n + delay` (zeros after the end).
        let ready = if self.received >= self.len { self.len } else { self.received.saturating_sub(delay) };
        // An FFT per block worth its cost, unless this is the end.
        let block = (4 * taps).max(1 << 15);
        if ready <= self.next || (ready < self.len && ready - self.next < block) {
            return Vec::new();
        }
        // From the first input sample output `next` needs; inputs before 0 are zeros.
        let first = (self.next + delay).saturating_sub(taps - 1);
        let y = self.filter.filter(&self.history[first - self.start..]);
        let out = y[self.next - first..ready - first].to_vec();
        self.next = ready;
        let keep = (self.next + delay).saturating_sub(taps - 1);
        self.history.drain(..keep - self.start);
        self.start = keep;
        out
    }
}

impl CustomOp1 for FirFilter {
    fn name(&self) -> &'static str {
        "fir-filter"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("fir-filter needs a contiguous input");
        };
        let CpuStorage::F32(data) = storage else {
            bail!("fir-filter works on f32 signals");
        };
        let len = layout.dims().last().copied().unwrap_or(0);
        let data = &data[start..end];
        let out: Vec<f32> = if len == 0 { Vec::new() } else { data.chunks(len).flat_map(|row| self.filter(row)).collect() };
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(self.adjoint().forward(grad_res)?))
    }
}

/// Zeroth-order modified Bessel function of the first kind (for the Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, mut k) = (1.0, 1.0, 1.0);
    while term > 1e-12 * sum {
        term *= (x / (2.0 * k)).powi(2);
        sum += term;
        k += 1.0;
    }
    sum
}

/// Zero-phase Kaiser-windowed-sinc low-pass with its −6 dB point at `cutoff_hz`, about
/// 80 dB of stop-band rejection, and a transition band 5 % of the cutoff wide.
pub fn lowpass(cutoff_hz: f64, sample_rate: u32) -> FirFilter {
    const ATTENUATION_DB: f64 = 80.0;
    let sr = sample_rate as f64;
    let transition = 0.05 * cutoff_hz;
    let order = ((ATTENUATION_DB - 8.0) / (2.285 * 2.0 * std::f64::consts::PI * transition / sr)).ceil() as usize;
    let half = order.div_ceil(2);
    let beta = 0.1102 * (ATTENUATION_DB - 8.7);
    let fc = cutoff_hz / sr;
    let taps: Vec<f32> = (0..=2 * half)
        .map(|i| {
            let m = i as f64 - half as f64;
            let sinc = if m == 0.0 { 2.0 * fc } else { (2.0 * std::f64::consts::PI * fc * m).sin() / (std::f64::consts::PI * m) };
            let r = m / half as f64;
            let window = bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta);
            (sinc * window) as f32
        })
        .collect();
    FirFilter::new(taps, half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Var;

    fn direct(taps: &[f32], delay: usize, x: &[f32]) -> Vec<f32> {
        (0..x.len()).map(|n| taps.iter().enumerate().filter_map(|(k, &h)| (n + delay).checked_sub(k).and_then(|i| x.get(i)).map(|&v| h * v)).sum()).collect()
    }

    fn signal(n: usize, seed: u32) -> Vec<f32> {
        (0..n).map(|i| (((i as u32).wrapping_mul(2654435761).wrapping_add(seed)) >> 8) as f32 / (1u32 << 24) as f32 - 0.5).collect()
    }

    #[test]
    fn fft_filter_matches_direct_convolution() {
        let x = signal(1000, 1);
        for (taps, delay) in [(signal(37, 2), 0), (signal(37, 3), 18), (signal(5, 4), 4)] {
            let fir = FirFilter::new(taps.clone(), delay);
            let (fast, slow) = (fir.filter(&x), direct(&taps, delay, &x));
            let err = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(err < 1e-5, "delay {delay}: max error {err}");
        }
    }

    #[test]
    fn gradient_is_the_adjoint() {
        // <F x, g> must equal <x, F* g>: check autograd's gradient of sum(F(x)·g) is F* g.
        let fir = FirFilter::new(signal(21, 5), 7);
        let x = Var::from_vec(signal(300, 6), (1, 300), &Device::Cpu).unwrap();
        let g = Tensor::from_vec(signal(300, 7), (1, 300), &Device::Cpu).unwrap();
        let loss = (fir.forward(x.as_tensor()).unwrap() * &g).unwrap().sum_all().unwrap();
        let grad: Vec<f32> = loss.backward().unwrap().get(&x).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        // Direct transpose: grad[m] = Σ_n g[n]·taps[n + delay − m].
        let (taps, gv) = (fir.taps(), g.flatten_all().unwrap().to_vec1::<f32>().unwrap());
        for m in [0usize, 1, 150, 299] {
            let want: f32 = (0..300).filter_map(|n: usize| (n + 7).checked_sub(m).and_then(|k| taps.get(k)).map(|&h| h * gv[n])).sum();
            assert!((grad[m] - want).abs() < 1e-5, "m {m}: {} vs {want}", grad[m]);
        }
    }

    #[test]
    fn lowpass_passes_low_and_stops_high() {
        let sr = 16_000;
        let fir = lowpass(4000.0, sr);
        let tone = |hz: f32| -> Vec<f32> { (0..8000).map(|n| (2.0 * std::f32::consts::PI * hz * n as f32 / sr as f32).sin()).collect() };
        let rms = |x: &[f32]| (x[1000..7000].iter().map(|v| v * v).sum::<f32>() / 6000.0).sqrt();
        let pass = rms(&fir.filter(&tone(1000.0))) / rms(&tone(1000.0));
        let stop = rms(&fir.filter(&tone(6000.0))) / rms(&tone(6000.0));
        assert!((pass - 1.0).abs() < 1e-3, "pass-band gain {pass}");
        assert!(stop < 1e-3, "stop-band gain {stop}");
    }

    #[test]
    fn streaming_in_blocks_matches_filtering_whole() {
        let x: Vec<f32> = (0..100_000).map(|n| ((n * 7919) % 1013) as f32 / 1013.0 - 0.5).collect();
        for filter in
            [lowpass(1000.0, 16_000), FirFilter::new(vec![0.5, -0.25, 0.125], 0), FirFilter::new((0..9000).map(|k| 1.0 / (1.0 + k as f32)).collect(), 0)]
        {
            let whole = filter.filter(&x);
            for block in [1_000, 40_000, 100_000] {
                let mut stream = FirStream::new(filter.clone(), x.len());
                let got: Vec<f32> = x.chunks(block).flat_map(|b| stream.push(b)).collect();
                assert_eq!(got.len(), whole.len());
                let err = got.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(err < 1e-4, "blocks of {block}: max error {err}");
            }
        }
    }
}
