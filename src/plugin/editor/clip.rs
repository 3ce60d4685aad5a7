//! The clip panel: the waveform and spectrogram where the user marks what to restore,
//! and what was captured.

use egui::{RichText, Ui};
use std::sync::Arc;

use super::DggEditor;
use crate::dsp::bandwidth::detect_cutoff;
use crate::dsp::clipping::detect_clip_level;
use crate::plugin::capture::Take;
use crate::plugin::clips::Role;
use crate::plugin::settings::write;
use crate::restore::operators::TaskKind;

impl DggEditor {
    pub(super) fn clip(&mut self, ui: &mut Ui, original: Option<&Arc<Take>>, restored: Option<&Arc<Take>>) {
        let Some(original) = original else {
            let text = "Nothing captured yet. Press Capture and play the region to repair: the track is recorded \
                        with its place on the timeline until the transport stops or loops.";
            egui::Frame::group(ui.style()).show(ui, |ui| {
                ui.set_min_size(egui::vec2(ui.available_width(), 120.0));
                ui.centered_and_justified(|ui| ui.label(RichText::new(text).weak()));
            });
            return;
        };
        let task = self.params.task.value();
        self.propose_marks(original, task);
        let mut marks = write(&self.params.marks);
        self.clip_view.show(ui, original, restored, self.spectrum, task, &mut marks);
        drop(marks);
        ui.horizontal(|ui| {
            let rate = original.clip.sample_rate;
            let channels = if original.clip.channels.len() == 1 { "mono" } else { "stereo" };
            let start = original.start as f64 / rate as f64;
            ui.label(format!(
                "Captured {:.2} s at {:.1} kHz, {channels}, from {start:.3} s on the timeline",
                original.len() as f64 / rate as f64,
                f64::from(rate) / 1_000.0
            ));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.selectable_value(&mut self.spectrum, Role::Restored, "Restored").on_hover_text("Spectrogram of the restoration (once there is one)");
                ui.selectable_value(&mut self.spectrum, Role::Original, "Original");
                ui.label(RichText::new("Spectrogram of").weak());
            });
        });
    }

    /// For super-resolution, proposes the cutoff where the captured spectrum ends; for
    /// declipping, the level the samples pile up at: once per clip and task, and only
    /// where the user has not set one.
    pub(super) fn propose_marks(&mut self, original: &Arc<Take>, task: TaskKind) {
        if !matches!(task, TaskKind::SuperResolution | TaskKind::Declip)
            || self.proposed_for.as_ref().is_some_and(|(p, t)| Arc::ptr_eq(p, original) && *t == task)
        {
            return;
        }
        self.proposed_for = Some((original.clone(), task));
        let mut marks = self.marks();
        let clip = &original.clip;
        match task {
            TaskKind::SuperResolution if marks.cutoff_hz.is_none() => marks.cutoff_hz = detect_cutoff(&clip.channels, clip.sample_rate),
            TaskKind::Declip if marks.clip_level.is_none() => marks.clip_level = detect_clip_level(&clip.channels),
            _ => {}
        }
    }
}
