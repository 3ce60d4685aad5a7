//! The DAW-facing plugin: audio layouts, ids, and the process callback.
//!
//! While nothing has been restored the plugin is an exact pass-through: the wrapper has
//! already copied the input to the output, and `process` leaves it untouched.

mod editor;
mod params;

use nice_plug::prelude::*;
use nice_plug_egui::EguiEditorState;
use std::sync::Arc;

use crate::model::ModelSearch;
use params::DggParams;

pub struct DggRestore {
    params: Arc<DggParams>,
    editor_state: Arc<EguiEditorState>,
}

impl Default for DggRestore {
    fn default() -> Self {
        Self {
            params: Arc::new(DggParams::default()),
            editor_state: editor::default_state(),
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
    type BackgroundTask = ();

    fn params(&self) -> Arc<dyn Params> {
        self.params.clone()
    }

    fn editor(&mut self, _async_executor: AsyncExecutor<Self>) -> Option<Self::Editor> {
        editor::create(self.editor_state.clone(), ModelSearch::for_plugin())
    }

    fn process(
        &mut self,
        _buffer: &mut Buffer,
        _aux: &mut AuxiliaryBuffers,
        _context: &mut impl ProcessContext<Self>,
    ) -> ProcessStatus {
        ProcessStatus::Normal
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
