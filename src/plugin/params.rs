//! Host-visible parameters. Empty until the restore workflow gives the user something to
//! automate: a control that does nothing is worse than none.

use nice_plug::prelude::*;

#[derive(Params, Default)]
pub struct DggParams {}
