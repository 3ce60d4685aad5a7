//! The header: the plugin's name and version, and the model's status line.

use egui::{RichText, Ui};

use super::DggEditor;
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
    }
}
