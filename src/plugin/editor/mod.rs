//! The plugin's editor (nice-plug-egui): the clip view where the user marks what to
//! restore, the restoration's settings, Restore / Cancel with progress, the model's status,
//! the longest take and the export of the restoration.
//!
//! Everything a host should automate or recall is a host parameter and is set through the
//! host ([`ParamSetter`]); the marks and preferences are persistent fields edited here.
//!
//! One file per panel, top to bottom: [`header`], [`clip`] (drawn by [`clip_view`], with
//! [`analysis`]), [`settings`], [`actions`] (their outcome worded by [`status`]), [`setup`].

mod actions;
mod analysis;
mod clip;
mod clip_view;
mod header;
mod settings;
mod setup;
mod status;

use egui::{Color32, Ui};
use nice_plug::context::gui::GuiContext;
use nice_plug::prelude::{Param, ParamSetter};
use nice_plug_egui::{create_egui_editor, EguiEditor, EguiEditorState, EguiNiceSettings};
use nice_plug_egui::{Frame, NiceEguiApp, RepaintNotifier};
use std::sync::{Arc, RwLockWriteGuard};
use std::time::Duration;

use super::capture::Take;
use super::clips::Role;
use super::params::DggParams;
use super::restorer::Restorer;
use super::settings::{read, write, Marks, Preferences};
use crate::restore::operators::TaskKind;
use clip_view::ClipView;

const WIDTH: u32 = 960;
const HEIGHT: u32 = 720;
/// How often the window refreshes while something changes without user input (a job
/// running, a take being recorded).
const LIVE_REFRESH: Duration = Duration::from_millis(200);
const ERROR_COLOUR: Color32 = Color32::from_rgb(255, 110, 100);
const CAPTURE_COLOUR: Color32 = Color32::from_rgb(255, 120, 120);
const NOTICE_COLOUR: Color32 = Color32::from_rgb(255, 200, 90);

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
    import_path: String,
    /// Import at the playhead rather than at the start of the timeline.
    import_at_playhead: bool,
    notice: Option<Notice>,
    /// Capture was pressed while a clip exists: ask before replacing it.
    confirm_recapture: bool,
    /// The clip and task marks were last proposed for.
    proposed_for: Option<(Arc<Take>, TaskKind)>,
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
            import_path: String::new(),
            import_at_playhead: true,
            notice: None,
            confirm_recapture: false,
            proposed_for: None,
        }
    }

    fn marks(&self) -> RwLockWriteGuard<'_, Marks> {
        write(&self.params.marks)
    }

    fn preferences(&self) -> Preferences {
        read(&self.params.preferences).clone()
    }

    fn set_preferences(&self, change: impl FnOnce(&mut Preferences)) {
        change(&mut write(&self.params.preferences));
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
            self.setup(ui, restored.as_ref());
        });
    }
}

/// Sets a host parameter as one gesture.
fn set<P: Param>(setter: &ParamSetter, param: &P, value: P::Plain) {
    setter.begin_set_parameter(param);
    setter.set_parameter(param, value);
    setter.end_set_parameter(param);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::read_wav;
    use crate::audio::AudioClip;
    use crate::dsp::fir::lowpass;
    use crate::dsp::test_noise;
    use crate::plugin::clips::ClipStore;
    use crate::restore::operators::TaskKind;
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
        let take = Take::new(AudioClip::new(48_000, vec![band_limited.clone(), band_limited]), 4_800);
        let restored = Take::new(AudioClip::new(48_000, vec![test_noise(96_000, 2), test_noise(96_000, 3)]), take.start);
        let params = Arc::new(DggParams::default());
        params.clips.set(ClipStore { original: Some(Arc::new(take)), restored: Some(Arc::new(restored)) });
        let restorer = Arc::new(Restorer::new(params.clips.clone(), || Box::new(|_: &_, _: &mut dyn FnMut(String)| Err("no model in this test".to_string()))));
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
        for task in [TaskKind::Inpaint, TaskKind::Dereverb, TaskKind::Phase, TaskKind::SuperResolution] {
            set(&gui.param_setter(), &editor.params.task, task);
            assert_eq!(editor.params.task.value(), task);
            frame(&ctx, &mut editor);
            frame(&ctx, &mut editor);
        }
        let cutoff = editor.marks().cutoff_hz.expect("proposed from the spectrum");
        assert!((cutoff - 4_000.0).abs() < 200.0, "{cutoff}");
        // The settings now make a request the engine accepts.
        assert!(editor.params.restore_request().is_ok());
        // The take is not clipped: declipping proposes no level and says what is missing.
        set(&gui.param_setter(), &editor.params.task, TaskKind::Declip);
        frame(&ctx, &mut editor);
        assert_eq!(editor.marks().clip_level, None);
        assert_eq!(editor.params.restore_request().unwrap_err(), crate::plugin::settings::Unmarked::ClipLevel);
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
    fn a_wav_file_is_imported_as_the_take_at_the_playhead_and_saved_with_the_project() {
        let mut editor = editor();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("song.wav");
        let file = AudioClip::new(44_100, vec![test_noise(22_050, 4), test_noise(22_050, 5)]);
        crate::audio::write_wav(&path, &file, crate::audio::WavFormat::FLOAT32).unwrap();
        // The host placed a block at 2 s (48 kHz) on the timeline.
        let clips = editor.params.clips.clone();
        clips.set_deck_rate(48_000.0);
        let mut deck = crate::plugin::clips::Deck::new(clips.reserve_capture(2, 100), None, None);
        deck.record(clips.mail(), &[vec![0.0f32; 64], vec![0.0; 64]], 48_000.0, false, Some(96_000));

        editor.import_path = path.display().to_string();
        editor.import();
        assert!(matches!(&editor.notice, Some(Notice::Info(t)) if t.contains("at 2.000 s")), "{:?}", editor.notice.as_ref().map(|_| ()));
        let store = clips.read().clone();
        assert_eq!(store.original.as_deref(), Some(&Take::new(file.clone(), 88_200)), "the file, at 2 s at its own rate");
        assert!(store.restored.is_none(), "the old restoration went with the old take");
        // Saved with the project and loaded into a fresh instance, it is the same take.
        let saved = serde_json::to_string(&store).unwrap();
        let reopened = crate::plugin::clips::Clips::default();
        reopened.set(serde_json::from_str(&saved).unwrap());
        assert_eq!(reopened.read().original, store.original);

        editor.import_at_playhead = false;
        editor.import();
        assert_eq!(clips.read().original.as_ref().unwrap().start, 0, "at the start of the timeline");
        let surround = AudioClip::new(44_100, vec![vec![0.1; 4_410]; 3]);
        crate::audio::write_wav(&path, &surround, crate::audio::WavFormat::FLOAT32).unwrap();
        editor.import();
        assert!(matches!(&editor.notice, Some(Notice::Error(e)) if e.contains("3 channels") && e.contains("mono or stereo")));
        editor.import_path = dir.path().join("missing.wav").display().to_string();
        editor.import();
        assert!(matches!(&editor.notice, Some(Notice::Error(e)) if e.contains("missing.wav")));
        assert_eq!(clips.read().original.as_ref().unwrap().clip, file, "a failed import keeps the take");
    }

    /// *Preview* starts the job as a preview; the editor draws its progress and outcome
    /// (here the test's loader has no model, so the outcome is that error).
    #[test]
    fn preview_starts_a_preview_of_the_settings() {
        let (ctx, mut editor) = (egui::Context::default(), editor());
        editor.marks().gaps = vec![(0.5, 0.6)];
        editor.preview();
        assert!(editor.restorer.is_preview());
        frame(&ctx, &mut editor);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !matches!(editor.restorer.status(), crate::plugin::restorer::Status::Failed(_)) {
            assert!(std::time::Instant::now() < deadline, "{:?}", editor.restorer.status());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(editor.restorer.status(), crate::plugin::restorer::Status::Failed("no model in this test".into()));
        frame(&ctx, &mut editor);
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
        assert_eq!((clip.sample_rate, &clip.channels), (48_000, &restored.clip.channels), "bit-exact, at the take's rate");
        editor.export_path = dir.path().join("missing/dir/x.wav").display().to_string();
        editor.export(&restored);
        assert!(matches!(&editor.notice, Some(Notice::Error(e)) if e.contains("Could not export")));
    }
}
