//! The header: the plugin's name and version, the model's status line, and what loading
//! the model had to say (it runs on the CPU because the GPU could not be used).

use egui::{RichText, Ui};

use super::{DggEditor, NOTICE_COLOUR};
use crate::model::ModelSearch;

impl DggEditor {
    pub(super) fn header(&mut self, ui: &mut Ui) {
        let chosen = self.preferences().model_dir;
        let model = self.model_status.get_or_insert_with(|| ModelSearch::for_plugin(chosen).status_line());
        ui.horizontal(|ui| {
            ui.heading(RichText::new("DGG Restore").strong());
            ui.label(RichText::new(format!("v{}", env!("CARGO_PKG_VERSION"))).weak());
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.add(egui::Label::new(RichText::new(model.as_str()).small()).truncate());
            });
        });
        if let Some(notice) = self.restorer.notice() {
            ui.label(RichText::new(notice).small().color(NOTICE_COLOUR));
        }
    }
}
