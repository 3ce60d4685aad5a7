//! The restoration algorithm, model-agnostic: the degradation operators `A`, the loss that
//! compares a candidate with the measurement, the DDIM schedule and step, the guidance
//! methods, and the sampler that restores one model-length window. The prior is seen only
//! through [`prior::LatentPrior`].

pub mod ddim;
pub mod guidance;
pub mod measurement;
pub mod noise;
pub mod operators;
pub mod prior;
pub mod random_walk;
pub mod sampler;
pub mod schedule;
pub mod torch_random;
