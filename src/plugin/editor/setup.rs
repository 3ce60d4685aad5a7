//! The setup panel: the model folder, the longest take, a file imported as the take, the
//! export of the restoration, and the notice about the last of these the user did.

use egui::{RichText, Ui};
use std::path::PathBuf;
use std::sync::Arc;

use super::{DggEditor, Notice, ERROR_COLOUR};
use crate::audio::{write_wav, WavFormat};
use crate::model::ModelSearch;
use crate::plugin::capture::{import_wav, Take};
use crate::plugin::settings::Preferences;

impl DggEditor {
    /// The model directory, the longest take and the export.
    pub(super) fn setup(&mut self, ui: &mut Ui, restored: Option<&Arc<Take>>) {
        egui::Grid::new("housekeeping").num_columns(2).spacing([12.0, 6.0]).show(ui, |ui| {
            ui.label("Model folder");
            ui.horizontal(|ui| {
                let field = egui::TextEdit::singleline(&mut self.model_dir_text).hint_text("folder holding model_index.json (AudioLDM2)").desired_width(380.0);
                ui.add(field);
                if ui.button("Use").clicked() {
                    self.choose_model_dir();
                }
                if ui.button("Free memory").on_hover_text("Unload the model; the next restoration loads it again").clicked() {
                    self.restorer.release_model();
                    self.notice = Some(Notice::Info("The model is unloaded once the current restoration ends.".into()));
                }
            });
            ui.end_row();

            ui.label("Longest take");
            let mut seconds = self.preferences().max_capture_seconds;
            let drag = egui::DragValue::new(&mut seconds).range(Preferences::MAX_CAPTURE_RANGE).speed(1.0).suffix(" s");
            let drag = ui.add(drag).on_hover_text("Memory for a take is reserved ahead; longer takes need more");
            if drag.changed() {
                self.set_preferences(|p| p.max_capture_seconds = seconds);
            }
            // The buffer is reserved once the value settles, not at every step of a drag.
            if drag.drag_stopped() || (drag.changed() && !drag.dragged()) {
                self.params.clips.resize_capture(seconds);
            }
            ui.end_row();

            ui.label("Import");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.import_path).hint_text("a WAV file to repair").desired_width(380.0));
                if ui.button("Import WAV").on_hover_text("Make the file the take, without playing it through the track").clicked() {
                    self.import();
                }
                ui.checkbox(&mut self.import_at_playhead, "at the playhead").on_hover_text("Otherwise at the start of the timeline");
            });
            ui.end_row();

            ui.label("Export");
            ui.horizontal(|ui| {
                ui.add(egui::TextEdit::singleline(&mut self.export_path).desired_width(380.0));
                if ui.add_enabled(restored.is_some(), egui::Button::new("Export restored WAV")).clicked() {
                    if let Some(r) = restored {
                        self.export(r);
                    }
                }
            });
            ui.end_row();
        });
        match &self.notice {
            Some(Notice::Info(text)) => ui.label(text.as_str()),
            Some(Notice::Error(text)) => ui.label(RichText::new(text.as_str()).color(ERROR_COLOUR)),
            None => ui.label(""),
        };
    }

    pub(super) fn choose_model_dir(&mut self) {
        let dir = PathBuf::from(self.model_dir_text.trim());
        if ModelSearch::new(vec![dir.clone()]).found().is_none() {
            let message = format!("{} holds no model_index.json: choose the folder of the AudioLDM2 model (diffusers layout).", dir.display());
            self.notice = Some(Notice::Error(message));
            return;
        }
        self.set_preferences(|p| p.model_dir = Some(dir.clone()));
        self.restorer.release_model();
        self.model_status = None;
        self.notice = Some(Notice::Info(format!("The next restoration uses the model in {}.", dir.display())));
    }

    /// Makes the file in the import field the take, at the playhead (where the host last
    /// placed a block) or at the start of the timeline; its restoration, if any, goes.
    pub(super) fn import(&mut self) {
        let path = PathBuf::from(self.import_path.trim());
        self.notice = Some(match import_wav(&path) {
            Ok(clip) => {
                let at = match (self.import_at_playhead, self.params.clips.playhead()) {
                    (true, Some((pos, rate))) => (pos as f64 * f64::from(clip.sample_rate) / f64::from(rate)).round() as i64,
                    _ => 0,
                };
                let seconds = at as f64 / f64::from(clip.sample_rate);
                let replaced = self.params.clips.read().original.is_some();
                self.params.clips.set_original(Take::new(clip, at));
                let what = if replaced { "replacing the captured clip and its restoration" } else { "nothing was captured before" };
                Notice::Info(format!("Imported {} as the take, at {seconds:.3} s on the timeline ({what}).", path.display()))
            }
            Err(e) => Notice::Error(format!("Could not import: {e}")),
        });
    }

    pub(super) fn export(&mut self, restored: &Take) {
        let path = PathBuf::from(self.export_path.trim());
        let clip = restored.clip.clone();
        self.notice = Some(match write_wav(&path, &clip, WavFormat::FLOAT32) {
            Ok(()) => Notice::Info(format!("Exported the restoration to {}.", path.display())),
            Err(e) => Notice::Error(format!("Could not export: {e}")),
        });
    }
}
