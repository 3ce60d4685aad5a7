//! The restoration algorithm, model-agnostic. So far: the degradation operators `A` whose
//! measurements the guidance matches.

pub mod operators;
pub mod schedule;
