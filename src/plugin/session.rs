//! A session to open the plugin with, for the standalone build: the clips and marks a
//! saved project would bring, given on its command line (a host restores them through the
//! plugin state instead). Set once, before the plugin is made.

use std::sync::OnceLock;

use super::clips::ClipStore;
use super::settings::Marks;

static OPENING: OnceLock<(ClipStore, Marks)> = OnceLock::new();

/// Opens every plugin made from now on with `clips` and `marks`; only the first call counts.
pub fn open_with(clips: ClipStore, marks: Marks) {
    let _ = OPENING.set((clips, marks));
}

/// What the plugin opens with, if [`open_with`] was called.
pub fn opening() -> Option<&'static (ClipStore, Marks)> {
    OPENING.get()
}
