//! Host-visible parameters and the state saved with the project.

use nice_plug::prelude::*;
use std::sync::RwLock;

use super::clips::Clips;
use super::settings::Marks;

/// What to restore.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskParam {
    #[name = "Fill gaps"]
    Inpaint,
    #[name = "Restore highs"]
    SuperResolution,
    #[name = "Remove reverb"]
    Dereverb,
    #[name = "Rebuild phase"]
    Phase,
}

/// How the prior is guided.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MethodParam {
    #[name = "DGG"]
    Dgg,
    #[name = "DPS"]
    Dps,
    #[name = "MPGD"]
    Mpgd,
    #[name = "DSG"]
    Dsg,
    #[name = "DITTO (slow)"]
    Ditto,
    #[name = "DDIM (unguided)"]
    Ddim,
}

/// What the plugin outputs while the host plays inside the captured region.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// The restoration (the input while there is none).
    #[name = "Restored"]
    Restored,
    /// The captured clip, for A/B against the restoration.
    #[name = "Original"]
    Original,
    /// The live input.
    #[name = "Input"]
    Input,
}

#[derive(Params)]
pub struct DggParams {
    /// The captured and restored clips: large, so not parameters, but saved with the project.
    #[persist = "clips"]
    pub clips: Clips,

    /// The gaps, cutoff and other marks on the clip.
    #[persist = "marks"]
    pub marks: RwLock<Marks>,

    #[id = "task"]
    pub task: EnumParam<TaskParam>,

    #[id = "method"]
    pub method: EnumParam<MethodParam>,

    /// Guidance strength as a multiple of the method's paper value.
    #[id = "strength"]
    pub strength: FloatParam,

    #[id = "steps"]
    pub steps: IntParam,

    /// Record the next playing stretch of the track (switching it on arms the capture;
    /// switching it off ends a take in progress).
    #[id = "capture"]
    pub capture: BoolParam,

    #[id = "listen"]
    pub listen: EnumParam<Listen>,
}

impl Default for DggParams {
    fn default() -> Self {
        Self {
            clips: Clips::default(),
            marks: RwLock::new(Marks::default()),
            task: EnumParam::new("Task", TaskParam::Inpaint),
            method: EnumParam::new("Method", MethodParam::Dgg),
            strength: FloatParam::new("Guidance strength", 1.0, FloatRange::Skewed { min: 0.0, max: 4.0, factor: FloatRange::skew_factor(-1.0) })
                .with_unit("×")
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            // 500 is the paper's, on a GPU; a guided step on a CPU takes tens of seconds.
            steps: IntParam::new("Steps", 100, IntRange::Linear { min: 1, max: 1000 }),
            capture: BoolParam::new("Capture", false),
            listen: EnumParam::new("Listen", Listen::Restored),
        }
    }
}
