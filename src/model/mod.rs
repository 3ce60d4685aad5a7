//! The AudioLDM2 prior in candle: configs, weights, the networks, and where they live.
//!
//! Each network module follows candle-transformers' shape: a `Config` read from the
//! diffusers `config.json`, `new(vb, &cfg)` with weights named as the checkpoint names
//! them, and `forward`.

pub mod audioldm2;
pub mod device;
pub mod error;
pub mod hub;
pub mod loader;
mod locate;
pub mod nn;
pub mod ops;
pub mod text;
pub mod unet;
pub mod vae;
pub mod vocoder;

pub use locate::ModelSearch;
