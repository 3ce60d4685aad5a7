//! The geometry of DGG and DSG: moving the drawn noise along the sphere it lives on.
//!
//! High-dimensional Gaussian noise concentrates on a sphere of radius ≈ √d. A plain
//! gradient step leaves that sphere (and the data manifold the sampler expects); DGG
//! instead turns the noise towards the descent direction by spherical interpolation, which
//! keeps its norm.

use candle_core::{Result, Tensor};

/// Above this |cos θ| the two directions are (anti)parallel and slerp is ill-conditioned:
/// fall back to linear interpolation.
const PARALLEL: f64 = 0.9995;

/// Euclidean norm of a whole tensor.
pub fn norm(x: &Tensor) -> Result<f64> {
    Ok(x.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?.sqrt())
}

fn dot(a: &Tensor, b: &Tensor) -> Result<f64> {
    (a * b)?.sum_all()?.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()
}

/// Spherical interpolation from `a` to `b` by `gamma` ∈ [0, 1]; the angle is measured
/// between the directions of `a` and `b` over the whole tensor.
pub fn slerp(a: &Tensor, b: &Tensor, gamma: f64) -> Result<Tensor> {
    let (na, nb) = (norm(a)?, norm(b)?);
    let cos = (dot(a, b)? / (na * nb).max(f64::MIN_POSITIVE)).clamp(-1.0, 1.0);
    let (w0, w1) = if cos.abs() > PARALLEL {
        (1.0 - gamma, gamma)
    } else {
        let theta = cos.acos();
        (((1.0 - gamma) * theta).sin() / theta.sin(), (gamma * theta).sin() / theta.sin())
    };
    (a * w0)? + (b * w1)?
}

/// DGG's mixed noise (DESIGN.md §2, step 6): the gradient `grad` rescaled to the norm of
/// `noise`, then `slerp(noise, −ĝ, gamma)`. The result has the norm of `noise`.
pub fn geodesic_noise(noise: &Tensor, grad: &Tensor, gamma: f64) -> Result<Tensor> {
    let scale = norm(noise)? / (norm(grad)? + 1e-8);
    slerp(noise, &(grad * -scale)?, gamma)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn t(v: &[f32]) -> Tensor {
        Tensor::new(v, &Device::Cpu).unwrap()
    }

    #[test]
    fn slerp_keeps_the_norm_and_the_angle_fraction() {
        let (a, b) = (t(&[3.0, 0.0]), t(&[0.0, 3.0]));
        let m: Vec<f32> = slerp(&a, &b, 1.0 / 3.0).unwrap().to_vec1().unwrap();
        // a third of the way round a quarter circle of radius 3: 30°
        let want = [3.0 * 30f32.to_radians().cos(), 3.0 * 30f32.to_radians().sin()];
        assert!((m[0] - want[0]).abs() < 1e-5 && (m[1] - want[1]).abs() < 1e-5, "{m:?}");
    }

    #[test]
    fn parallel_directions_interpolate_linearly() {
        let m: Vec<f32> = slerp(&t(&[2.0, 0.0]), &t(&[4.0, 0.0]), 0.25).unwrap().to_vec1().unwrap();
        assert_eq!(m, vec![2.5, 0.0]);
    }

    #[test]
    fn geodesic_noise_turns_towards_descent_at_constant_norm() {
        let noise = t(&[1.0, 1.0, 0.0]);
        let grad = t(&[0.0, 0.0, 100.0]);
        let mixed = geodesic_noise(&noise, &grad, 0.5).unwrap();
        assert!((norm(&mixed).unwrap() - norm(&noise).unwrap()).abs() < 1e-5);
        let v: Vec<f32> = mixed.to_vec1().unwrap();
        assert!(v[2] < -0.5, "moves against the gradient: {v:?}");
        // γ = 0 is the noise itself
        assert_eq!(geodesic_noise(&noise, &grad, 0.0).unwrap().to_vec1::<f32>().unwrap(), vec![1.0, 1.0, 0.0]);
    }
}
