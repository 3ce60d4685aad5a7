//! Host-visible parameters and the state saved with the project.

use nice_plug::prelude::*;

use super::clips::Clips;

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
            capture: BoolParam::new("Capture", false),
            listen: EnumParam::new("Listen", Listen::Restored),
        }
    }
}
