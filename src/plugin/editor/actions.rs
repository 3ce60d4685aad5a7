//! The actions: Capture (asking before a clip is replaced), Restore / Cancel with the
//! progress, and the outcome of the last restoration.

use egui::{RichText, Ui};
use nice_plug::prelude::ParamSetter;

use super::{set, status, DggEditor, CAPTURE_COLOUR, ERROR_COLOUR};
use crate::plugin::clips::RecorderState;
use crate::plugin::restorer::Status;

impl DggEditor {
    pub(super) fn actions(&mut self, ui: &mut Ui, setter: &ParamSetter, has_clip: bool) {
        let status = self.restorer.status();
        let capturing = self.follow_capture(setter);
        ui.horizontal(|ui| {
            let label = if capturing { RichText::new("Stop capture").color(CAPTURE_COLOUR) } else { RichText::new("Capture") };
            let capture = ui.add(egui::Button::new(label).min_size(egui::vec2(110.0, 28.0)).selected(capturing));
            if capture.clicked() {
                match (capturing, has_clip) {
                    (false, true) => self.confirm_recapture = true,
                    _ => set(setter, &self.params.capture, !capturing),
                }
            }
            if capturing {
                let what = match self.params.clips.mail().recorder_state() {
                    RecorderState::Armed => "Armed: play the region to record it",
                    RecorderState::Recording => "Recording: stop or loop the transport to finish the take",
                    RecorderState::Idle | RecorderState::Finished => "Arming…",
                };
                ui.label(RichText::new(what).color(CAPTURE_COLOUR));
            }
            ui.separator();
            if status.is_busy() {
                if ui.add(egui::Button::new("Cancel").min_size(egui::vec2(90.0, 28.0))).clicked() {
                    self.restorer.cancel();
                }
                let fraction = match status {
                    Status::Running { fraction, .. } => fraction as f32,
                    _ => 0.0,
                };
                let caption = status::progress_caption(&status, self.restorer.is_preview()).unwrap_or_default();
                ui.add(egui::ProgressBar::new(fraction).text(caption).animate(true));
            } else {
                let restore = ui.add_enabled(has_clip, egui::Button::new(RichText::new("Restore").strong()).min_size(egui::vec2(110.0, 28.0)));
                if restore.clicked() {
                    let _ = self.restorer.start(self.params.restore_request(), self.params.prompt());
                }
                let preview = ui.add_enabled(has_clip, egui::Button::new("Preview").min_size(egui::vec2(90.0, 28.0)));
                if preview.on_hover_text("A quick render in a few tens of steps, same seed and settings: hear where it is heading").clicked() {
                    self.preview();
                }
                if let (true, Err(missing)) = (has_clip, self.params.restore_request()) {
                    ui.label(RichText::new(format!("To restore: {missing}")).weak());
                }
            }
        });
        if let Some((text, error)) = status::outcome(&status, self.restorer.is_preview()) {
            ui.label(if error { RichText::new(text).color(ERROR_COLOUR) } else { RichText::new(text) });
        }
        if self.confirm_recapture {
            self.recapture_dialog(ui, setter);
        }
    }

    /// *Preview*: the restoration the settings ask for, in a few tens of steps.
    pub(super) fn preview(&mut self) {
        let _ = self.restorer.preview(self.params.restore_request(), self.params.prompt());
    }

    /// The Capture switch as it should be now: switched back off once its take is done.
    pub(super) fn follow_capture(&mut self, setter: &ParamSetter) -> bool {
        let on = self.params.capture.value();
        if on && self.params.clips.mail().recorder_state() == RecorderState::Finished {
            set(setter, &self.params.capture, false);
            return false;
        }
        on
    }

    pub(super) fn recapture_dialog(&mut self, ui: &mut Ui, setter: &ParamSetter) {
        egui::Window::new("Replace the captured clip?").collapsible(false).resizable(false).anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0]).show(
            ui.ctx(),
            |ui| {
                ui.label("A new capture replaces the captured clip and its restoration. Export the restoration first if you want to keep it.");
                ui.horizontal(|ui| {
                    if ui.button("Replace").clicked() {
                        set(setter, &self.params.capture, true);
                        self.confirm_recapture = false;
                    }
                    if ui.button("Keep the clip").clicked() {
                        self.confirm_recapture = false;
                    }
                });
            },
        );
    }
}
