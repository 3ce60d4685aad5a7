//! The restoration algorithm, model-agnostic. So far: the degradation operators `A` whose
//! measurements the guidance matches, the DDIM schedule, and the [`prior::LatentPrior`]
//! interface the guidance sees the model through.

pub mod operators;
pub mod prior;
pub mod schedule;
