//! The DAW-facing plugin: audio layouts, ids, and the process callback.
//!
//! The audio thread records takes ([`capture`]) and plays clips at their place on the
//! timeline ([`playback`]) through a [`clips::Deck`]; a background task files finished
//! takes in the [`clips::Clips`] that are saved with the project. Outside a clip, or
//! listening to the input, the plugin is an exact pass-through: the wrapper has already
//! copied the input to the output.

pub mod capture;
pub mod clips;
mod editor;
pub mod params;
pub mod playback;
pub mod restorer;
pub mod settings;

use nice_plug::prelude::*;
use nice_plug_egui::EguiEditorState;
use std::sync::Arc;

use crate::model::ModelSearch;
use clips::{Deck, Role};
use params::{DggParams, Listen};

/// The longest take, reserved when the plugin is activated.
const MAX_CAPTURE_SECONDS: f32 = 60.0;

/// Work the audio thread hands to a background thread.
pub enum Task {
    /// A take ended: file it and lend the recorder a new buffer.
    CollectTake,
}

pub struct DggRestore {
    params: Arc<DggParams>,
    editor_state: Arc<EguiEditorState>,
    deck: Deck,
    sample_rate: f32,
    /// Edge crossfade of playback, in frames.
    fade: usize,
    /// The capture switch as the last block saw it: its edges arm and disarm.
    capture_was_on: bool,
}

impl Default for DggRestore {
    fn default() -> Self {
        Self {
            params: Arc::new(DggParams::default()),
            editor_state: editor::default_state(),
            deck: Deck::new(0, 0, None, None),
            sample_rate: 44_100.0,
            fade: playback::edge_fade(44_100.0),
            capture_was_on: false,
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
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(2),
            main_output_channels: NonZeroU32::new(2),
            ..AudioIOLayout::const_default()
        },
        AudioIOLayout {
            main_input_channels: NonZeroU32::new(1),
            main_output_channels: NonZeroU32::new(1),
            ..AudioIOLayout::const_default()
        },
    ];

    type Editor = nice_plug_egui::EguiEditor<editor::DggEditor>;
    type SysExMessage = ();
    type BackgroundTask = Task;

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn task_executor(&mut self) -> TaskExecutor<Self> {
        let params = self.params.clone();
        Box::new(move |task| match task {
            Task::CollectTake => {
                params.clips.collect();
            }
        })
    }

    /// Reserves the record buffer and loads the saved clips into the deck, brought to the
    /// host's rate; runs again on a sample-rate change, which loses nothing: the store keeps
    /// the clips at their own rate. (A state load reaches the deck through [`clips::Clips`],
    /// since nice-plug does not re-activate after one.)
    fn activate(&mut self, layout: &AudioIOLayout, buffer_config: &BufferConfig, _context: &mut impl ActivateContext<Self>) -> bool {
        self.keep_take_in_progress();
        let channels = layout.main_output_channels.map_or(2, |c| c.get() as usize);
        let rate = buffer_config.sample_rate;
        let capacity = (MAX_CAPTURE_SECONDS * rate) as usize;
        self.params.clips.set_deck_rate(rate);
        let clips = &self.params.clips;
        self.deck = Deck::new(channels, capacity, clips.for_deck(Role::Original), clips.for_deck(Role::Restored));
        self.sample_rate = rate;
        self.fade = playback::edge_fade(rate);
        // A switch saved in the on position does not arm by itself: only a change does.
        self.capture_was_on = self.params.capture.value();
        true
    }

    fn deactivate(&mut self) {
        self.keep_take_in_progress();
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.editor_state.clone(), ModelSearch::for_plugin())
    }

    fn process(&mut self, buffer: &mut Buffer, _aux: &mut AuxiliaryBuffers, context: &mut impl ProcessContext<Self>) -> ProcessStatus {
        let transport = context.transport();
        let (playing, pos) = (transport.playing, transport.pos_samples());
        let mail = self.params.clips.mail();
        self.deck.receive(mail);

        let capture_on = self.params.capture.value();
        if capture_on != self.capture_was_on {
            if capture_on {
                self.deck.arm();
            } else {
                self.deck.disarm(mail);
            }
            self.capture_was_on = capture_on;
        }
        let block = buffer.as_slice();
        self.deck.record(mail, &*block, self.sample_rate, playing, pos);
        if self.deck.take_posted() {
            context.execute_background(Task::CollectTake);
        }

        if let (true, Some(pos)) = (playing, pos) {
            match self.params.listen.value() {
                Listen::Original => self.deck.play(Role::Original, self.fade, pos, block),
                Listen::Restored => self.deck.play(Role::Restored, self.fade, pos, block),
                Listen::Input => {}
            }
        }
        ProcessStatus::Normal
    }
}

impl DggRestore {
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
    const CLAP_DESCRIPTION: Option<&'static str> =
        Some("Zero-shot music restoration with Diffusion Geodesic Guidance");
    const CLAP_MANUAL_URL: Option<&'static str> = None;
    const CLAP_SUPPORT_URL: Option<&'static str> = None;
    const CLAP_FEATURES: &'static [ClapFeature] = &[
        ClapFeature::AudioEffect,
        ClapFeature::Stereo,
        ClapFeature::Mono,
        ClapFeature::Restoration,
    ];
}

impl Vst3Plugin for DggRestore {
    const VST3_CLASS_ID: [u8; 16] = *b"DggRestoreDGG001";
    const VST3_SUBCATEGORIES: &'static [Vst3SubCategory] =
        &[Vst3SubCategory::Fx, Vst3SubCategory::Restoration];
}
