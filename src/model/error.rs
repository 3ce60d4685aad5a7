//! What can go wrong loading and running a model directory, for every network in it.

use candle_core::DType;
use std::path::PathBuf;

use super::loader::LoadError;
use crate::config::ConfigError;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{}: not a diffusers model directory (no model_index.json); see models/README.md for how to get the weights", .0.display())]
    NotAModelDir(PathBuf),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A network could not be built from its weights; the message names file and tensor.
    #[error("{component}: {message}")]
    Weights { component: &'static str, message: String },
    #[error("{}: the components do not fit together: {message}", .dir.display())]
    Mismatch { dir: PathBuf, message: String },
    /// Conditioning that does not fit the UNet (widths, batch, mask, guidance length).
    #[error("conditioning: {0}")]
    BadConditioning(String),
    /// A text component or tokenizer file that cannot be used.
    #[error("{}: {message}", .path.display())]
    Text { path: PathBuf, message: String },
    /// A device that cannot be used as asked.
    #[error("{0}")]
    Device(String),
    /// A precision the device cannot run.
    #[error("{0:?} does not run on the CPU (candle's CPU backend has no {0:?} matrix product): use --dtype f32 there, or f16, or run on CUDA")]
    PrecisionOnCpu(DType),
}
