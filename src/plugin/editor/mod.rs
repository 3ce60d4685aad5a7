//! The plugin's editor (nice-plug-egui): the clip view where the user marks what to
//! restore, the restoration's settings, Restore / Cancel with progress, the model's status,
//! the longest take and the export of the restoration.
//!
//! Everything a host should automate or recall is a host parameter and is set through the
//! host ([`ParamSetter`]); the marks and preferences are persistent fields edited here.

mod analysis;
mod clip_view;
mod status;

use egui::{Color32, RichText, Ui};
use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::{Enum, EnumParam, Param, ParamSetter};
use nice_plug_egui::widgets::ParamSlider;
use nice_plug_egui::{create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings};
use nice_plug_egui::{Frame, NiceEguiApp, RepaintNotifier};
use std::path::PathBuf;
use std::sync::{Arc, RwLockWriteGuard};
use std::time::Duration;

use super::capture::Take;
use super::clips::{RecorderState, Role};
use super::params::DggParams;
use super::restorer::Restorer;
use super::settings::TaskParam;
use super::settings::{Marks, Preferences};
use crate::audio::{write_wav, AudioClip, WavFormat};
use crate::dsp::bandwidth::detect_cutoff;
use crate::model::ModelSearch;
use crate::restore::guidance::MethodKind;
use clip_view::ClipView;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 720;
/// How often the window refreshes while something changes without user input (a job
/// running, a take being recorded).
const LIVE_REFRESH: Duration = Duration::from_millis(200);
const ERROR_COLOUR: Color32 = Color32::from_rgb(255, 110, 100);
const CAPTURE_COLOUR: Color32 = Color32::from_rgb(255, 120, 120);

pub fn default_state() -> Arc<EguiEditorState> {
    EguiEditorState::from_size(nice_plug::editor::dpi::LogicalSize::new(WIDTH as f64, HEIGHT as f64), 1.0)
}

pub fn create(state: Arc<EguiEditorState>, params: Arc<DggParams>, restorer: Arc<Restorer>) -> Option<EguiEditor<DggEditor>> {
    let settings = EguiNiceSettings::new().with_tile("DGG Restore");
    create_egui_editor(state, RepaintNotifier::new(), settings, DggEditor::new(params, restorer))
}

/// A message about the last thing the user did outside a restoration.
enum Notice {
    Info(String),
    Error(String),
}

pub struct DggEditor {
    params: Arc<DggParams>,
    restorer: Arc<Restorer>,
    gui: Option<GuiContext>,
    clip_view: ClipView,
    /// Which clip the spectrogram shows.
    spectrum: Role,
    /// The model's status line, looked up when the window opens or the directory changes
    /// (it touches the disk).
    model_status: Option<String>,
    model_dir_text: String,
    export_path: String,
    notice: Option<Notice>,
    /// Capture was pressed while a clip exists: ask before replacing it.
    confirm_recapture: bool,
    /// The clip a cutoff was last proposed for.
    proposed_for: Option<Arc<Take>>,
}

impl DggEditor {
    fn new(params: Arc<DggParams>, restorer: Arc<Restorer>) -> Self {
        let export = dirs::audio_dir().or_else(dirs::home_dir).unwrap_or_default().join("DGG Restore - restored.wav");
        Self {
            params,
            restorer,
            gui: None,
            clip_view: ClipView::default(),
            spectrum: Role::Restored,
            model_status: None,
            model_dir_text: String::new(),
            export_path: export.display().to_string(),
            notice: None,
            confirm_recapture: false,
            proposed_for: None,
        }
    }

    fn marks(&self) -> RwLockWriteGuard<'_, Marks> {
        write_marks(&self.params)
    }

    fn preferences(&self) -> Preferences {
        self.params.preferences.read().map(|p| p.clone()).unwrap_or_default()
    }

    fn set_preferences(&self, change: impl FnOnce(&mut Preferences)) {
        change(&mut self.params.preferences.write().unwrap_or_else(|poisoned| poisoned.into_inner()));
    }
}

impl NiceEguiApp for DggEditor {
    fn build(&mut self, _ctx: egui::Context, gui: GuiContext, _frame: &mut Frame) -> Result<(), nice_plug_egui::baseview::HandlerError> {
        self.gui = Some(gui);
        Ok(())
    }

    fn ui(&mut self, ui: &mut Ui, _frame: &mut Frame) {
        self.draw(ui);
    }

    fn editor_closed(&mut self) {
        self.model_status = None;
        self.gui = None;
    }
}

impl DggEditor {
    /// One frame of the whole editor.
    fn draw(&mut self, ui: &mut Ui) {
        let Some(gui) = self.gui.clone() else { return };
        let setter = gui.param_setter();
        let status = self.restorer.status();
        if status.is_busy() || self.params.capture.value() {
            ui.ctx().request_repaint_after(LIVE_REFRESH);
        }
        let (original, restored) = {
            let store = self.params.clips.read();
            (store.original.clone(), store.restored.clone())
        };
        egui::Frame::NONE.inner_margin(10.0).show(ui, |ui| {
            self.header(ui);
            ui.separator();
            self.clip(ui, original.as_ref(), restored.as_ref());
            ui.separator();
            self.settings(ui, &setter, original.as_ref());
            ui.separator();
            self.actions(ui, &setter, original.is_some());
            ui.separator();
            self.housekeeping(ui, restored.as_ref());
        });
    }

    fn header(&mut self, ui: &mut Ui) {
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

    fn clip(&mut self, ui: &mut Ui, original: Option<&Arc<Take>>, restored: Option<&Arc<Take>>) {
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
        self.propose_cutoff(original, task);
        let mut marks = write_marks(&self.params);
        self.clip_view.show(ui, original, restored, self.spectrum, task, &mut marks);
        drop(marks);
        ui.horizontal(|ui| {
            let rate = original.sample_rate;
            let channels = if original.channels.len() == 1 { "mono" } else { "stereo" };
            let start = original.start as f64 / rate as f64;
            ui.label(format!(
                "Captured {:.2} s at {:.1} kHz, {channels}, from {start:.3} s on the timeline",
                original.len() as f64 / rate as f64,
                rate / 1_000.0
            ));
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.selectable_value(&mut self.spectrum, Role::Restored, "Restored").on_hover_text("Spectrogram of the restoration (once there is one)");
                ui.selectable_value(&mut self.spectrum, Role::Original, "Original");
                ui.label(RichText::new("Spectrogram of").weak());
            });
        });
    }

    /// For super-resolution, proposes the cutoff where the captured spectrum ends, once
    /// per clip and only where the user has not set one.
    fn propose_cutoff(&mut self, original: &Arc<Take>, task: TaskParam) {
        if task != TaskParam::SuperResolution || self.proposed_for.as_ref().is_some_and(|p| Arc::ptr_eq(p, original)) {
            return;
        }
        self.proposed_for = Some(original.clone());
        let mut marks = self.marks();
        if marks.cutoff_hz.is_none() {
            marks.cutoff_hz = detect_cutoff(&original.channels, original.sample_rate.round() as u32);
        }
    }

    fn settings(&mut self, ui: &mut Ui, setter: &ParamSetter, original: Option<&Arc<Take>>) {
        let params = self.params.clone();
        egui::Grid::new("settings").num_columns(4).spacing([12.0, 6.0]).show(ui, |ui| {
            ui.label("Task");
            enum_buttons(ui, setter, &params.task);
            ui.label("Listen");
            enum_buttons(ui, setter, &params.listen);
            ui.end_row();

            ui.label("Method");
            enum_combo(ui, setter, &params.method);
            ui.label("Mix");
            ui.add(ParamSlider::for_param(&params.mix, setter));
            ui.end_row();

            ui.label("Guidance strength");
            ui.horizontal(|ui| {
                ui.add(ParamSlider::for_param(&params.strength, setter));
                let kind = MethodKind::from(params.method.value());
                let value = kind.default_strength() * params.strength.value() as f64;
                ui.label(RichText::new(format!("{} strength {value:.4}", kind.name().to_uppercase())).weak()).on_hover_text(
                    "A multiple of the method's value in the paper (DGG: γ = 0.08). Stronger follows the recording more closely; weaker leans on the prior.",
                );
            });
            ui.label("Steps");
            ui.add(ParamSlider::for_param(&params.steps, setter));
            ui.end_row();

            ui.label(task_marks_label(params.task.value()));
            self.task_marks(ui, params.task.value(), original);
            ui.label("Seed");
            ui.add(egui::DragValue::new(&mut self.marks().seed).speed(1.0));
            ui.end_row();

            ui.label("Prompt");
            ui.add(egui::TextEdit::singleline(&mut self.marks().prompt).hint_text("optional, e.g. \"solo piano\"").desired_width(260.0));
            ui.end_row();
        });
    }

    /// What the task needs marked on the clip.
    fn task_marks(&mut self, ui: &mut Ui, task: TaskParam, original: Option<&Arc<Take>>) {
        let mut marks = self.marks();
        ui.horizontal(|ui| match task {
            TaskParam::Inpaint => {
                let total: f64 = marks.gaps.iter().map(|(s, e)| e - s).sum();
                ui.label(format!("{} marked, {total:.2} s", plural(marks.gaps.len(), "gap")))
                    .on_hover_text("Drag over the waveform to mark a gap; right-click a gap to remove it");
                if ui.add_enabled(!marks.gaps.is_empty(), egui::Button::new("Clear")).clicked() {
                    marks.gaps.clear();
                }
            }
            TaskParam::SuperResolution => {
                match marks.cutoff_hz {
                    Some(hz) => ui.label(format!("{:.2} kHz", hz / 1_000.0)),
                    None => ui.label("not set"),
                }
                .on_hover_text("Drag on the spectrogram to move the cutoff line");
                if let Some(o) = original {
                    if ui.button("Detect").on_hover_text("Find where the captured spectrum ends").clicked() {
                        marks.cutoff_hz = detect_cutoff(&o.channels, o.sample_rate.round() as u32).or(marks.cutoff_hz);
                    }
                }
            }
            TaskParam::Dereverb => {
                ui.add(egui::DragValue::new(&mut marks.rt60).range(0.1..=5.0).speed(0.01).suffix(" s RT60"))
                    .on_hover_text("Reverberation time of the room to remove");
            }
            TaskParam::Phase => {
                ui.label(RichText::new("nothing to mark: the phase is rebuilt from the magnitude").weak());
            }
        });
    }

    fn actions(&mut self, ui: &mut Ui, setter: &ParamSetter, has_clip: bool) {
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
                    super::restorer::Status::Running { fraction, .. } => fraction as f32,
                    _ => 0.0,
                };
                let caption = status::progress_caption(&status).unwrap_or_default();
                ui.add(egui::ProgressBar::new(fraction).text(caption).animate(true));
            } else {
                let restore = ui.add_enabled(has_clip, egui::Button::new(RichText::new("Restore").strong()).min_size(egui::vec2(110.0, 28.0)));
                if restore.clicked() {
                    let _ = self.restorer.start(self.params.restore_request(), self.params.prompt());
                }
                if let (true, Err(missing)) = (has_clip, self.params.restore_request()) {
                    ui.label(RichText::new(format!("To restore: {missing}")).weak());
                }
            }
        });
        if let Some((text, error)) = status::outcome(&status) {
            ui.label(if error { RichText::new(text).color(ERROR_COLOUR) } else { RichText::new(text) });
        }
        if self.confirm_recapture {
            self.recapture_dialog(ui, setter);
        }
    }

    /// The Capture switch as it should be now: switched back off once its take is done.
    fn follow_capture(&mut self, setter: &ParamSetter) -> bool {
        let on = self.params.capture.value();
        if on && self.params.clips.mail().recorder_state() == RecorderState::Finished {
            set(setter, &self.params.capture, false);
            return false;
        }
        on
    }

    fn recapture_dialog(&mut self, ui: &mut Ui, setter: &ParamSetter) {
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

    /// The model directory, the longest take and the export.
    fn housekeeping(&mut self, ui: &mut Ui, restored: Option<&Arc<Take>>) {
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

    fn choose_model_dir(&mut self) {
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

    fn export(&mut self, restored: &Take) {
        let path = PathBuf::from(self.export_path.trim());
        let clip = AudioClip::new(restored.sample_rate.round() as u32, restored.channels.clone());
        self.notice = Some(match write_wav(&path, &clip, WavFormat::FLOAT32) {
            Ok(()) => Notice::Info(format!("Exported the restoration to {}.", path.display())),
            Err(e) => Notice::Error(format!("Could not export: {e}")),
        });
    }
}

/// The marks, to edit (a panic elsewhere while they were locked leaves them as they were).
fn write_marks(params: &DggParams) -> RwLockWriteGuard<'_, Marks> {
    params.marks.write().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn task_marks_label(task: TaskParam) -> &'static str {
    match task {
        TaskParam::Inpaint => "Gaps",
        TaskParam::SuperResolution => "Cutoff",
        TaskParam::Dereverb => "Room",
        TaskParam::Phase => "Marks",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Sets a host parameter as one gesture.
fn set<P: Param>(setter: &ParamSetter, param: &P, value: P::Plain) {
    setter.begin_set_parameter(param);
    setter.set_parameter(param, value);
    setter.end_set_parameter(param);
}

/// A row of buttons, one per value of an enum parameter.
fn enum_buttons<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    ui.horizontal(|ui| enum_choices(ui, setter, param));
}

/// A drop-down of the values of an enum parameter.
fn enum_combo<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    let current = T::variants()[param.value().to_index()];
    egui::ComboBox::from_id_salt(param.name()).selected_text(current).show_ui(ui, |ui| enum_choices(ui, setter, param));
}

/// One selectable label per value of an enum parameter; a click sets it.
fn enum_choices<T: Enum + PartialEq + Copy + 'static>(ui: &mut Ui, setter: &ParamSetter, param: &EnumParam<T>) {
    let current = param.value().to_index();
    for (i, name) in T::variants().iter().enumerate() {
        if ui.selectable_label(current == i, *name).clicked() && current != i {
            set(setter, param, T::from_index(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::read_wav;
    use crate::dsp::fir::lowpass;
    use crate::dsp::test_noise;
    use crate::plugin::clips::ClipStore;
    use nice_plug::context::gui::GuiContextInner;
    use nice_plug::context::PluginApi;
    use nice_plug::params::internals::ParamPtr;
    use nice_plug::params::persist::PersistentField;
    use nice_plug::plugin::PluginState;

    /// A host that applies what the editor sets straight to the parameters.
    struct Host;

    impl GuiContextInner for Host {
        fn plugin_api(&self) -> PluginApi {
            PluginApi::Clap
        }
        unsafe fn raw_begin_set_parameter(&self, _: ParamPtr) {}
        unsafe fn raw_set_parameter_normalized(&self, param: ParamPtr, normalized: f32) {
            unsafe { param._internal_set_normalized_value(normalized) };
        }
        unsafe fn raw_end_set_parameter(&self, _: ParamPtr) {}
        fn get_state(&self) -> PluginState {
            PluginState { version: String::new(), params: Default::default(), fields: Default::default() }
        }
        fn set_state(&self, _: PluginState) {}
        fn request_restart(&self) {}
    }

    /// An editor on a take of noise low-passed at 4 kHz (48 kHz, stereo) and a restoration.
    fn editor() -> DggEditor {
        let band_limited = lowpass(4_000.0, 48_000).filter(&test_noise(96_000, 1));
        let take = Take { sample_rate: 48_000.0, start: 4_800, channels: vec![band_limited.clone(), band_limited] };
        let restored = Take { channels: vec![test_noise(96_000, 2), test_noise(96_000, 3)], ..take.clone() };
        let params = Arc::new(DggParams::default());
        params.clips.set(ClipStore { original: Some(Arc::new(take)), restored: Some(Arc::new(restored)) });
        let restorer = Arc::new(Restorer::new(params.clips.clone(), || Box::new(|_: &_| Err("no model in this test".to_string()))));
        let mut editor = DggEditor::new(params, restorer);
        editor.gui = Some(GuiContext::new(Arc::new(Host)));
        editor
    }

    fn frame(ctx: &egui::Context, editor: &mut DggEditor) {
        let input =
            egui::RawInput { screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(WIDTH as f32, HEIGHT as f32))), ..Default::default() };
        let _ = ctx.run_ui(input, |ui| editor.draw(ui));
    }

    #[test]
    fn every_task_renders_and_super_resolution_proposes_the_cutoff() {
        let (ctx, mut editor) = (egui::Context::default(), editor());
        let gui = editor.gui.clone().unwrap();
        for task in [TaskParam::Inpaint, TaskParam::Dereverb, TaskParam::Phase, TaskParam::SuperResolution] {
            set(&gui.param_setter(), &editor.params.task, task);
            assert_eq!(editor.params.task.value(), task);
            frame(&ctx, &mut editor);
            frame(&ctx, &mut editor);
        }
        let cutoff = editor.marks().cutoff_hz.expect("proposed from the spectrum");
        assert!((cutoff - 4_000.0).abs() < 200.0, "{cutoff}");
        // The settings now make a request the engine accepts.
        assert!(editor.params.restore_request().is_ok());
    }

    #[test]
    fn the_capture_switch_goes_back_off_when_its_take_is_done() {
        let editor = &mut editor();
        let gui = editor.gui.clone().unwrap();
        let setter = gui.param_setter();
        let clips = editor.params.clips.clone();
        let mut deck = crate::plugin::clips::Deck::new(clips.reserve_capture(1, 1_000), None, None);
        set(&setter, &editor.params.capture, true);
        assert!(editor.follow_capture(&setter), "on, before the audio thread saw it");
        deck.arm();
        deck.record(clips.mail(), &[[0.5f32; 64]], 48_000.0, false, Some(0));
        assert!(editor.follow_capture(&setter), "armed, waiting for the transport");
        deck.record(clips.mail(), &[[0.5f32; 64]], 48_000.0, true, Some(0));
        assert!(editor.follow_capture(&setter), "recording");
        deck.record(clips.mail(), &[[0.5f32; 64]], 48_000.0, false, Some(64));
        assert!(!editor.follow_capture(&setter), "the transport stopped: the take is done");
        assert!(!editor.params.capture.value(), "and the switch is off again");

        // A take the editor never saw being recorded (too short, or the window was closed).
        clips.collect();
        deck.receive(clips.mail());
        deck.disarm(clips.mail());
        set(&setter, &editor.params.capture, true);
        deck.arm();
        deck.record(clips.mail(), &[[0.5f32; 64]], 48_000.0, true, Some(0));
        deck.record(clips.mail(), &[[0.5f32; 64]], 48_000.0, false, Some(64));
        assert!(!editor.follow_capture(&setter) && !editor.params.capture.value());
    }

    #[test]
    fn the_model_folder_must_hold_a_model_and_the_export_is_the_restoration() {
        let mut editor = editor();
        let dir = tempfile::tempdir().unwrap();
        editor.model_dir_text = dir.path().display().to_string();
        editor.choose_model_dir();
        assert!(matches!(&editor.notice, Some(Notice::Error(e)) if e.contains("model_index.json")), "refused");
        assert_eq!(editor.preferences().model_dir, None);
        std::fs::write(dir.path().join("model_index.json"), "{}").unwrap();
        editor.choose_model_dir();
        assert_eq!(editor.preferences().model_dir.as_deref(), Some(dir.path()));

        let path = dir.path().join("restored.wav");
        editor.export_path = path.display().to_string();
        let restored = editor.params.clips.read().restored.clone().unwrap();
        editor.export(&restored);
        assert!(matches!(&editor.notice, Some(Notice::Info(_))));
        let (clip, _) = read_wav(&path).unwrap();
        assert_eq!((clip.sample_rate, &clip.channels), (48_000, &restored.channels), "bit-exact, at the take's rate");
        editor.export_path = dir.path().join("missing/dir/x.wav").display().to_string();
        editor.export(&restored);
        assert!(matches!(&editor.notice, Some(Notice::Error(e)) if e.contains("Could not export")));
    }
}
