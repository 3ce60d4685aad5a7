//! exp and erf for f32 written so that loops over them vectorise (libm's are scalar calls):
//! exp by Cody–Waite range reduction and a degree-6 Taylor polynomial (about 1 ulp), erf
//! by Abramowitz & Stegun 7.1.26 (absolute error 1.5e-7 in exact arithmetic, below 5e-7
//! in f32).

const LOG2E: f32 = std::f32::consts::LOG2_E;
/// ln 2 split so that `n · LN2_HI` is exact for the |n| ≤ 128 used here.
const LN2_HI: f32 = 0.693_145_75;
const LN2_LO: f32 = 1.428_606_8e-6;
/// 1.5 · 2²³: adding and subtracting it rounds an f32 of magnitude below 2²² to an integer.
const ROUNDER: f32 = 12_582_912.0;

/// Whether the CPU has AVX2 and FMA (see [`vectorised!`]).
#[cfg(target_arch = "x86_64")]
pub fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

/// `vectorised!(pub fn name(args) -> R = body)` defines `name`, which calls `body` (an
/// `#[inline(always)]` fn) compiled for AVX2 and FMA where the CPU has them, else as built
/// (baseline x86-64 has only SSE2). The kernels' elementwise loops are written to
/// vectorise; this doubles their width without a target-cpu build flag. Results are the
/// same either way: the lanes are in the code, and Rust never fuses a multiply and an add.
macro_rules! vectorised {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? = $body:path) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::kernels::math::has_avx2_fma() {
                    // SAFETY: the CPU has the features `avx2` is compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use vectorised;

/// eˣ; 0 below −87.3 (where the result would leave the normal range), +∞ above 88.7.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let c = x.clamp(-87.3, 88.7);
    let t = c * LOG2E + ROUNDER;
    let n = t - ROUNDER;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // t's bits are those of ROUNDER plus the integer n (it stays in ROUNDER's binade), so
    // 2ⁿ's exponent field comes from integer arithmetic alone (no float→int conversion,
    // which does not vectorise as well).
    let y = p * f32::from_bits(t.to_bits().wrapping_sub(ROUNDER.to_bits() - 127) << 23);
    if x < -87.3 {
        0.0
    } else if x > 88.7 {
        f32::INFINITY
    } else {
        y
    }
}

/// The error function.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// 1 / (1 + e⁻ˣ).
#[inline(always)]
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulps_and_saturates() {
        let mut worst = 0f64;
        for i in -87_000..88_000 {
            let x = i as f32 / 1000.0;
            let (got, want) = (exp(x) as f64, (x as f64).exp());
            worst = worst.max((got - want).abs() / want);
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn erf_is_within_its_bound() {
        // Reference: erf by its Taylor series (|x| < 3) and its continued-fraction tail.
        fn erf64(x: f64) -> f64 {
            if x.abs() < 3.0 {
                let (mut term, mut sum, mut n) = (x, x, 0.0);
                while term.abs() > 1e-17 {
                    n += 1.0;
                    term *= -x * x / n;
                    sum += term / (2.0 * n + 1.0);
                }
                2.0 / std::f64::consts::PI.sqrt() * sum
            } else {
                let a = x.abs();
                let mut cf = 0.0;
                for k in (1..60).rev() {
                    cf = (k as f64 / 2.0) / (a + cf);
                }
                let tail = (-a * a).exp() / std::f64::consts::PI.sqrt() / (a + cf);
                (1.0 - tail).copysign(x)
            }
        }
        let worst = (-6000..6000).map(|i| i as f32 / 1000.0).map(|x| (erf(x) as f64 - erf64(x as f64)).abs()).fold(0.0, f64::max);
        assert!(worst < 5e-7, "absolute error {worst:e}");
    }
}
