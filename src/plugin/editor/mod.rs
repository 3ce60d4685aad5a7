//! The plugin's egui editor: title, version and where the model is.

use nice_plug_egui::{create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings};
use nice_plug_egui::{Frame, NiceEguiApp, RepaintNotifier};
use std::sync::Arc;

use crate::model::ModelSearch;

const WIDTH: u32 = 640;
const HEIGHT: u32 = 360;

pub fn default_state() -> Arc<EguiEditorState> {
    EguiEditorState::from_size(nice_plug::editor::dpi::LogicalSize::new(WIDTH as f64, HEIGHT as f64), 1.0)
}

pub fn create(state: Arc<EguiEditorState>, models: ModelSearch) -> Option<EguiEditor<DggEditor>> {
    let settings = EguiNiceSettings::new().with_tile("DGG Restore");
    create_egui_editor(state, RepaintNotifier::new(), settings, DggEditor { models, status: None })
}

pub struct DggEditor {
    models: ModelSearch,
    /// The model status, looked up once each time the window opens (it touches the disk).
    status: Option<String>,
}

impl NiceEguiApp for DggEditor {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut Frame) {
        let models = &self.models;
        let status = self.status.get_or_insert_with(|| models.status_line());
        ui.horizontal(|ui| {
            ui.heading("DGG Restore");
            ui.label(format!("v{}", env!("CARGO_PKG_VERSION")));
        });
        ui.separator();
        ui.label("Zero-shot music restoration with Diffusion Geodesic Guidance.");
        ui.add_space(8.0);
        ui.label(status.as_str());
    }

    fn editor_closed(&mut self) {
        self.status = None;
    }
}
