//! DGG Restore: zero-shot music restoration with Diffusion Geodesic Guidance (DGG) on a
//! frozen AudioLDM2 prior, as a CLAP/VST3 plugin and an offline renderer.
//!
//! Data flows one way: audio thread → capture → worker → restored clip → audio thread.
//! `plugin` is the DAW-facing side, `audio` reads and writes files, `dsp` holds the
//! spectral front end (plain and differentiable), `restore` the algorithm and its
//! degradation operators, `engine` restores whole clips with it, `evaluation` scores the
//! results, `model` where the prior's weights live. `kernels` holds the CPU kernels (f32)
//! the networks and the differentiable front end run on.

pub mod audio;
pub mod config;
pub mod dsp;
pub mod engine;
pub mod evaluation;
pub mod files;
pub mod kernels;
pub mod model;
pub mod plugin;
pub mod restore;

pub use plugin::DggRestore;

nice_plug::nice_export_clap!(plugin::DggRestore);
nice_plug::nice_export_vst3!(plugin::DggRestore);
