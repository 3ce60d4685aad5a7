//! Measuring restorations: making degraded test material ([`degrade`]), scoring a result
//! against the clean original ([`score`]), and the paper's protocol over many clips
//! ([`experiment`]).

pub mod degrade;
pub mod experiment;
pub mod score;
