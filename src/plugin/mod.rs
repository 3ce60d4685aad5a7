//! The DAW-facing plugin: audio layouts, ids, and the process callback.
//!
//! The audio thread records takes ([`capture`]) and plays clips at their place on the
//! timeline ([`playback`]) through a [`clips::Deck`]; the [`housekeeping`] thread files
//! finished takes and restorations in the [`clips::Clips`] that are saved with the project.
//! The [`restorer`] restores the take on a worker thread, asked by the editor or the
//! *Restore* switch. Outside a
//! clip, or listening to the input, the plugin is an exact pass-through (the wrapper has
//! already copied the input to the output), but for subnormals: no sample it outputs is
//! one, and its arithmetic runs with flush-to-zero on (nice-plug's `unsafe_flush_denormals`).

pub mod capture;
pub mod clips;
mod editor;
mod housekeeping;
pub mod params;
pub mod playback;
pub mod restorer;
pub mod session;
pub mod settings;

use nice_plug::prelude::*;
use nice_plug_egui::EguiEditorState;
use std::sync::Arc;
use std::time::Duration;

use capture::Take;
use clips::{Deck, Role};
use housekeeping::Housekeeper;
use params::{DggParams, Listen};
use restorer::{plugin_loader, Restorer};

pub struct DggRestore {
    params: Arc<DggParams>,
    restorer: Arc<Restorer>,
    housekeeper: Housekeeper,
    editor_state: Arc<EguiEditorState>,
    deck: Deck,
    sample_rate: f32,
    /// Edge crossfade of playback, in frames.
    fade: usize,
    /// The switches as the last block saw them: their edges start and stop things.
    capture_was_on: bool,
    restore_was_on: bool,
    /// An offline render (a bounce): blocks in the region wait for a restoration under way.
    offline: bool,
    /// The mix of each frame of the block (reserved on activation).
    mix: Vec<f32>,
}

impl Default for DggRestore {
    fn default() -> Self {
        let params = Arc::new(DggParams::default());
        let preferences = params.preferences.clone();
        let restorer = Restorer::new(params.clips.clone(), move || {
            let preferences = preferences.clone();
            plugin_loader(move || settings::read(&preferences).model_dir.clone())
        });
        let restorer = Arc::new(restorer);
        Self {
            housekeeper: Housekeeper::spawn(params.clone(), restorer.clone()),
            params,
            restorer,
            editor_state: editor::default_state(),
            deck: Deck::new(Take::with_capacity(0, 0), None, None),
            sample_rate: 44_100.0,
            fade: playback::edge_fade(44_100.0),
            capture_was_on: false,
            restore_was_on: false,
            offline: false,
            mix: Vec::new(),
        }
    }
}

impl Plugin for DggRestore {
    const NAME: &'static str = "DGG Restore";
    const VENDOR: &'static str = "DGG Restore";
    const URL: &'static str = "https://example.invalid/dgg-restore";
    const EMAIL: &'static str = "dgg-restore@example.invalid";
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");

    const AUDIO_IO_LAYOUTS: &'static [AudioIOLayout] = &[
        AudioIOLayout { main_input_channels: NonZeroU32::new(2), main_output_channels: NonZeroU32::new(2), ..AudioIOLayout::const_default() },
        AudioIOLayout { main_input_channels: NonZeroU32::new(1), main_output_channels: NonZeroU32::new(1), ..AudioIOLayout::const_default() },
    ];

    type Editor = nice_plug_egui::EguiEditor<editor::DggEditor>;
    type SysExMessage = ();
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    /// Reserves the record buffer and loads the saved clips into the deck, brought to the
    /// host's rate; runs again on a sample-rate change, which loses nothing: the store keeps
    /// the clips at their own rate. (A state load reaches the deck through [`clips::Clips`],
    /// since nice-plug does not re-activate after one.)
    fn activate(&mut self, layout: &AudioIOLayout, buffer_config: &BufferConfig, _context: &mut impl ActivateContext<Self>) -> bool {
        // A capture still waiting for the transport waits on in the new deck.
        let rearm = self.deck.is_armed();
        self.keep_take_in_progress();
        let channels = layout.main_output_channels.map_or(2, |c| c.get() as usize);
        let rate = buffer_config.sample_rate;
        let seconds = settings::read(&self.params.preferences).max_capture_seconds;
        let clips = &self.params.clips;
        clips.set_deck_rate(rate);
        let buffer = clips.reserve_capture(channels, (seconds * rate) as usize);
        self.deck = Deck::new(buffer, clips.for_deck(Role::Original), clips.for_deck(Role::Restored));
        self.sample_rate = rate;
        self.fade = playback::edge_fade(rate);
        self.offline = buffer_config.process_mode == ProcessMode::Offline;
        self.mix = vec![1.0; buffer_config.max_buffer_size as usize];
        if rearm {
            self.deck.arm();
        }
        // A switch saved in the on position does nothing by itself: only a change does.
        self.capture_was_on = self.params.capture.value();
        self.restore_was_on = self.params.restore.value();
        true
    }

    fn deactivate(&mut self) {
        self.keep_take_in_progress();
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.editor_state.clone(), self.params.clone(), self.restorer.clone())
    }

    fn process(&mut self, buffer: &mut Buffer, _aux: &mut AuxiliaryBuffers, context: &mut impl ProcessContext<Self>) -> ProcessStatus {
        let transport = context.transport();
        let (playing, pos) = (transport.playing, transport.pos_samples());
        let mail = self.params.clips.mail();
        self.deck.receive(mail);

        // A loaded state's switches were saved, not switched: they start nothing, and a
        // capture the project does not have on is not armed. (nice-plug loads the
        // parameters before the clips, on the main thread, so a block in between can still
        // take a loaded switch for a change; the reload then settles it.)
        if mail.take_reloaded() {
            self.capture_was_on = self.params.capture.value();
            self.restore_was_on = self.params.restore.value();
            if !self.capture_was_on {
                self.deck.disarm(mail);
            }
        }
        let capture_on = self.params.capture.value();
        if capture_on != self.capture_was_on {
            if capture_on {
                self.deck.arm();
            } else {
                self.deck.disarm(mail);
            }
            self.capture_was_on = capture_on;
        }
        let restore_on = self.params.restore.value();
        if restore_on != self.restore_was_on {
            let requests = self.housekeeper.requests();
            if restore_on {
                requests.restore();
            } else {
                requests.cancel();
            }
            self.restore_was_on = restore_on;
        }

        let frames = buffer.samples().min(self.mix.len());
        let mix = &mut self.mix[..frames];
        self.params.mix.smoothed.next_block(mix, frames);
        let block = buffer.as_slice();
        self.deck.record(mail, &*block, self.sample_rate, playing, pos);
        if self.deck.take_posted() {
            self.housekeeper.requests().collect_take();
        }

        if let (true, Some(pos)) = (playing, pos) {
            let listen = self.params.listen.value();
            if self.offline && listen == Listen::Restored {
                self.wait_for_restoration(pos, frames);
            }
            let mix = &self.mix[..frames];
            match listen {
                Listen::Original => self.deck.play(Role::Original, self.fade, pos, block, mix),
                Listen::Restored => self.deck.play(Role::Restored, self.fade, pos, block, mix),
                Listen::Input => {}
            }
        }
        playback::flush_subnormals(buffer.as_slice());
        ProcessStatus::Normal
    }
}

impl DggRestore {
    /// In an offline bounce, a block that touches the captured region waits while its
    /// restoration is asked for or being made, so the bounce never holds the unrestored
    /// input. (Only offline: in real time the audio thread never waits.)
    fn wait_for_restoration(&mut self, pos: i64, frames: usize) {
        let mail = self.params.clips.mail();
        let block = pos..pos + frames as i64;
        let touches = self.deck.clip(Role::Original).is_some_and(|c| c.span().start < block.end && block.start < c.span().end);
        let busy = || self.housekeeper.restore_pending() || mail.is_restoring();
        if touches && busy() {
            while busy() {
                std::thread::sleep(Duration::from_millis(5));
            }
            self.deck.receive(mail);
        }
    }

    /// Off the audio thread, before the deck is replaced or left: a take being recorded
    /// ends here and is filed, so deactivation or a rate change never loses it.
    fn keep_take_in_progress(&mut self) {
        let clips = &self.params.clips;
        clips.collect();
        if self.deck.disarm(clips.mail()).is_some() {
            clips.collect();
        }
    }
}

impl ClapPlugin for DggRestore {
    const CLAP_ID: &'static str = "org.dgg-restore.dgg-restore";
    const CLAP_DESCRIPTION: Option<&'static str> = Some("Zero-shot music restoration with Diffusion Geodesic Guidance");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[ClapFeature::AudioEffect, ClapFeature::Stereo, ClapFeature::Mono, ClapFeature::Restoration];
}

impl Vst3Plugin for DggRestore {
    const VST3_CLASS_ID: [u8; 16] = *b"DggRestoreDGG001";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] = &[Vst3SubCategory::Fx, Vst3SubCategory::Restoration];
}
