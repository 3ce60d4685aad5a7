//! Host-visible parameters and the state saved with the project.

use nice_plug::prelude::*;
use std::sync::{Arc, RwLock};

use super::clips::Clips;
use super::settings::{read, Choices, Marks, Preferences, Unmarked};
use crate::engine::worker::PromptSettings;
use crate::engine::RestoreRequest;
use crate::restore::guidance::MethodKind;
use crate::restore::operators::TaskKind;

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
    pub clips: Arc<Clips>,

    /// The gaps, cutoff and other marks on the clip.
    #[persist = "marks"]
    pub marks: RwLock<Marks>,

    /// The longest take and the model directory.
    #[persist = "preferences"]
    pub preferences: Arc<RwLock<Preferences>>,

    #[id = "task"]
    pub task: EnumParam<TaskKind>,

    #[id = "method"]
    pub method: EnumParam<MethodKind>,

    /// Guidance strength as a multiple of the method's paper value.
    #[id = "strength"]
    pub strength: FloatParam,

    #[id = "steps"]
    pub steps: IntParam,

    /// Record the next playing stretch of the track (switching it on arms the capture;
    /// switching it off ends a take in progress).
    #[id = "capture"]
    pub capture: BoolParam,

    /// Switching it on restores the captured clip with the current settings, as the
    /// editor's Restore button does (for controllers, and hosts without the editor);
    /// switching it off cancels a restoration under way.
    #[id = "restore"]
    pub restore: BoolParam,

    #[id = "listen"]
    pub listen: EnumParam<Listen>,

    /// How much of the clip Listen chose replaces the input inside the region (1: all of it).
    #[id = "mix"]
    pub mix: FloatParam,
}

impl Default for DggParams {
    fn default() -> Self {
        let (clips, marks) = super::session::opening().cloned().unwrap_or_default();
        Self {
            clips: Arc::new(Clips::with_store(clips)),
            marks: RwLock::new(marks),
            preferences: Arc::default(),
            task: EnumParam::new("Task", TaskKind::Inpaint),
            method: EnumParam::new("Method", MethodKind::Dgg),
            strength: FloatParam::new("Guidance strength", 1.0, FloatRange::Skewed { min: 0.0, max: 4.0, factor: FloatRange::skew_factor(-1.0) })
                .with_unit("×")
                .with_value_to_string(formatters::v2s_f32_rounded(2)),
            // 500 is the paper's, on a GPU; a guided step on a CPU takes tens of seconds.
            steps: IntParam::new("Steps", 100, IntRange::Linear { min: 1, max: 1000 }),
            capture: BoolParam::new("Capture", false),
            restore: BoolParam::new("Restore", false),
            listen: EnumParam::new("Listen", Listen::Restored),
            mix: FloatParam::new("Mix", 1.0, FloatRange::Linear { min: 0.0, max: 1.0 })
                .with_smoother(SmoothingStyle::Linear(20.0))
                .with_unit("%")
                .with_value_to_string(formatters::v2s_f32_percentage(0))
                .with_string_to_value(formatters::s2v_f32_percentage()),
        }
    }
}

impl DggParams {
    /// The host-parameter side of a restoration.
    pub fn choices(&self) -> Choices {
        Choices { task: self.task.value(), method: self.method.value(), strength: self.strength.value() as f64, steps: self.steps.value() as usize }
    }

    /// The restoration the current settings ask for, or what the user still has to mark.
    pub fn restore_request(&self) -> Result<RestoreRequest, Unmarked> {
        read(&self.marks).request(self.choices())
    }

    /// The prompt the prior is conditioned on.
    pub fn prompt(&self) -> PromptSettings {
        PromptSettings { prompt: read(&self.marks).prompt.clone(), ..PromptSettings::default() }
    }
}
