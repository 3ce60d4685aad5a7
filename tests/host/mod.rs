//! A small, real CLAP host for the integration tests, built on `clack-host`.
//!
//! It loads the bundled plugin (`target/bundled/DGG Restore.clap`, or `$DGG_CLAP_BUNDLE`) the
//! way a DAW does: through the CLAP entry point and plugin factory, then drives one instance
//! through the usual life cycle:
//!
//! ```ignore
//! let bundle = Bundle::load_default();
//! let mut plugin = bundle.instantiate(PLUGIN_ID);
//! plugin.activate(48_000.0, 512, 2).unwrap();          // selects the 2-channel port config
//! let mut transport = Transport::playing(48_000.0, 120.0);
//! let out = plugin.process(&[&left, &right], Some(&transport)).unwrap();
//! transport.advance(left.len());
//! let state = plugin.save_state().unwrap();
//! plugin.reset();
//! plugin.deactivate();                                 // also done on drop
//! ```
//!
//! `process` runs the plugin's `process` call on a separate (scoped) thread, like a host's audio
//! thread, and services the plugin's `request_callback` on the test's (main) thread afterwards.
//! Output buffers are filled with NaN before every call, so a plugin that does not write its
//! output cannot pass a bit-exact comparison by accident.

#![allow(dead_code)]

pub mod sync;

use std::cell::Cell;
use std::ffi::CString;
use std::fmt;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use clack_extensions::audio_ports::{AudioPortInfoBuffer, PluginAudioPorts};
use clack_extensions::audio_ports_config::{AudioPortsConfigBuffer, PluginAudioPortsConfig};
use clack_extensions::params::{ParamInfoBuffer, PluginParams};
use clack_extensions::render::{PluginRender, RenderMode};
use clack_extensions::state::{HostState, HostStateImpl, PluginState};
use clack_host::events::event_types::{ParamValueEvent, TransportEvent, TransportFlags};
use clack_host::events::io::EventBuffer;
use clack_host::events::{EventFlags, EventHeader, Pckn};
use clack_host::prelude::*;
use clack_host::utils::{BeatTime, SecondsTime};

/// The plugin's CLAP id.
pub const PLUGIN_ID: &str = "org.dgg-restore.dgg-restore";
/// The plugin's display name.
pub const PLUGIN_NAME: &str = "DGG Restore";
/// Environment variable that overrides the bundle location.
pub const BUNDLE_ENV: &str = "DGG_CLAP_BUNDLE";

/// Where the CLAP bundle is: `$DGG_CLAP_BUNDLE`, else `target/bundled/DGG Restore.clap`.
pub fn bundle_path() -> PathBuf {
    match std::env::var_os(BUNDLE_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("bundled").join("DGG Restore.clap"),
    }
}

/// [`bundle_path()`], panicking (failing the test, never skipping it) if nothing is there.
#[track_caller]
pub fn existing_bundle_path() -> PathBuf {
    let path = bundle_path();
    if !path.exists() {
        panic!(
            "CLAP bundle not found at '{}'.\n\
             Build it first with `cargo xtask bundle dgg_restore --release`, \
             or point ${BUNDLE_ENV} at a built .clap bundle.",
            path.display()
        );
    }
    path
}

// ---------------------------------------------------------------------------------------------
// Host handlers
// ---------------------------------------------------------------------------------------------

/// The host's handler types (what the plugin can call back into).
pub struct TestHost;

/// Thread-safe host callbacks: we only record what the plugin asked for.
#[derive(Default)]
pub struct TestHostShared {
    callback_requested: AtomicBool,
    restart_requested: AtomicBool,
    process_requested: AtomicBool,
    callback_requests: AtomicU32,
}

impl<'a> SharedHandler<'a> for TestHostShared {
    fn request_restart(&self) {
        self.restart_requested.store(true, Ordering::SeqCst);
    }
    fn request_process(&self) {
        self.process_requested.store(true, Ordering::SeqCst);
    }
    fn request_callback(&self) {
        self.callback_requests.fetch_add(1, Ordering::SeqCst);
        self.callback_requested.store(true, Ordering::SeqCst);
    }
}

/// Main-thread host callbacks.
#[derive(Default)]
pub struct TestHostMainThread {
    /// How many times the plugin called `clap_host_state::mark_dirty`.
    dirty_marks: Cell<u32>,
}

impl<'a> MainThreadHandler<'a> for TestHostMainThread {}

impl HostStateImpl for TestHostMainThread {
    fn mark_dirty(&self) {
        self.dirty_marks.set(self.dirty_marks.get() + 1);
    }
}

impl HostHandlers for TestHost {
    type Shared<'a> = TestHostShared;
    type MainThread<'a> = TestHostMainThread;
    type AudioProcessor<'a> = ();

    fn declare_extensions(builder: &mut HostExtensions<Self>, _shared: &Self::Shared<'_>) {
        builder.register::<HostState>();
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Anything that went wrong while driving the plugin.
#[derive(Debug)]
pub enum HostError {
    /// A clack-host call failed (instantiate, activate, start_processing, process, ...).
    Clack(PluginInstanceError),
    /// The plugin lacks a CLAP extension the operation needs.
    MissingExtension(&'static str),
    /// No audio-ports config with this many main input and output channels.
    NoPortConfig(usize),
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Clack(e) => write!(f, "clack-host: {e}"),
            HostError::MissingExtension(e) => write!(f, "plugin does not implement {e}"),
            HostError::NoPortConfig(n) => {
                write!(f, "plugin has no audio-ports config with {n} in / {n} out channels")
            }
            HostError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for HostError {}

impl From<PluginInstanceError> for HostError {
    fn from(e: PluginInstanceError) -> Self {
        HostError::Clack(e)
    }
}

pub type HostResult<T> = Result<T, HostError>;

// ---------------------------------------------------------------------------------------------
// Bundle
// ---------------------------------------------------------------------------------------------

/// A plugin descriptor as listed by the bundle's plugin factory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub id: String,
    pub name: String,
    pub vendor: String,
    pub version: String,
    pub features: Vec<String>,
}

/// A loaded CLAP bundle (its entry point, kept alive while this and any instance exist).
pub struct Bundle {
    path: PathBuf,
    entry: PluginEntry,
    host_info: HostInfo,
}

impl Bundle {
    /// Loads the bundle at [`bundle_path()`]; panics (failing the test) if it is missing.
    pub fn load_default() -> Self {
        Self::load(&existing_bundle_path()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Loads the CLAP bundle at `path` and keeps the library resident until the process
    /// exits, as most DAWs do.
    ///
    /// Why pinned: the plugin's copy of Rust's std registers a pthread-key destructor on every
    /// thread that calls `std::thread::current()` in it (nice-plug does, when instantiating and
    /// in its main-thread checks). If another thread unloads the library (`dlclose` of the last
    /// reference) while such a thread is exiting, that destructor jumps into unmapped code:
    /// SIGSEGV in `__nptl_deallocate_tsd` (rust-lang/rust#91979). Parallel tests hit this in
    /// most runs. `load_unpinned` + the ignored `concurrent_load_and_unload_does_not_crash`
    /// test reproduce it; linking the plugin with `-z nodelete` fixes it.
    pub fn load(path: &Path) -> HostResult<Self> {
        let bundle = Self::load_unpinned(path)?;
        // Leak one reference to the entry: clack-host then never deinits/unloads it.
        std::mem::forget(bundle.entry.clone());
        Ok(bundle)
    }

    /// Loads the CLAP bundle at `path`; the library is deinitialised and unloaded when this
    /// and the last instance created from it are dropped (and no other `Bundle` holds it).
    pub fn load_unpinned(path: &Path) -> HostResult<Self> {
        // SAFETY: loading a shared library runs its initialisers; the bundle is our own plugin.
        let entry = unsafe { PluginEntry::load(path) }.map_err(|e| HostError::Other(format!("could not load CLAP bundle '{}': {e}", path.display())))?;
        let host_info = HostInfo::new("DGG Restore test host", "DGG Restore", "https://example.invalid/dgg-restore", env!("CARGO_PKG_VERSION"))
            .map_err(|e| HostError::Other(format!("host info: {e}")))?;
        Ok(Self { path: path.to_owned(), entry, host_info })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The CLAP version the bundle's entry reports.
    pub fn clap_version(&self) -> (u32, u32, u32) {
        let v = self.entry.version();
        (v.major, v.minor, v.revision)
    }

    /// Every plugin the bundle's plugin factory lists.
    pub fn descriptors(&self) -> Vec<Descriptor> {
        let factory = self.entry.get_plugin_factory().expect("bundle exposes no CLAP plugin factory");
        let s = |c: Option<&std::ffi::CStr>| c.map(|c| c.to_string_lossy().into_owned()).unwrap_or_default();
        factory
            .plugin_descriptors()
            .map(|d| Descriptor {
                id: s(d.id()),
                name: s(d.name()),
                vendor: s(d.vendor()),
                version: s(d.version()),
                features: d.features().map(|f| f.to_string_lossy().into_owned()).collect(),
            })
            .collect()
    }

    /// Creates and initialises an instance of plugin `id`; panics on failure.
    pub fn instantiate(&self, id: &str) -> Plugin {
        self.try_instantiate(id).unwrap_or_else(|e| panic!("instantiating '{id}': {e}"))
    }

    /// Creates and initialises an instance of plugin `id`.
    pub fn try_instantiate(&self, id: &str) -> HostResult<Plugin> {
        let id = CString::new(id).map_err(|e| HostError::Other(e.to_string()))?;
        let instance = PluginInstance::<TestHost>::new(|_| TestHostShared::default(), |_| TestHostMainThread::default(), &self.entry, &id, &self.host_info)?;
        Ok(Plugin { instance, active: None, pending_params: Vec::new() })
    }
}

// ---------------------------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------------------------

/// A simple host transport: position in samples, constant tempo and time signature.
/// Converted to a CLAP `clap_event_transport` (seconds and beats timelines, tempo, time
/// signature, bar start/number, play/record/loop flags) for each block.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Transport {
    pub sample_rate: f64,
    pub playing: bool,
    pub recording: bool,
    /// Song position of the block's first sample, in samples.
    pub pos_samples: i64,
    /// Beats per minute.
    pub tempo: f64,
    /// (numerator, denominator).
    pub time_sig: (u16, u16),
    /// Loop range in samples, if looping is active.
    pub loop_samples: Option<(i64, i64)>,
}

impl Transport {
    /// A playing transport at song position 0.
    pub fn playing(sample_rate: f64, tempo: f64) -> Self {
        Self { sample_rate, playing: true, recording: false, pos_samples: 0, tempo, time_sig: (4, 4), loop_samples: None }
    }

    /// A stopped transport at song position 0.
    pub fn stopped(sample_rate: f64, tempo: f64) -> Self {
        Self { playing: false, ..Self::playing(sample_rate, tempo) }
    }

    pub fn at(mut self, pos_samples: i64) -> Self {
        self.pos_samples = pos_samples;
        self
    }

    pub fn samples_to_seconds(&self, samples: i64) -> f64 {
        samples as f64 / self.sample_rate
    }

    pub fn samples_to_beats(&self, samples: i64) -> f64 {
        self.samples_to_seconds(samples) * self.tempo / 60.0
    }

    pub fn pos_seconds(&self) -> f64 {
        self.samples_to_seconds(self.pos_samples)
    }

    pub fn pos_beats(&self) -> f64 {
        self.samples_to_beats(self.pos_samples)
    }

    /// Quarter-note beats per bar.
    pub fn beats_per_bar(&self) -> f64 {
        let (num, den) = self.time_sig;
        num as f64 * 4.0 / den as f64
    }

    /// Moves the song position on by `frames` if the transport is playing (wrapping inside the
    /// loop range when looping).
    pub fn advance(&mut self, frames: usize) {
        if !self.playing {
            return;
        }
        self.pos_samples += frames as i64;
        if let Some((start, end)) = self.loop_samples {
            if end > start && self.pos_samples >= end {
                self.pos_samples = start + (self.pos_samples - start) % (end - start);
            }
        }
    }

    /// The CLAP transport struct for a block starting at the current position.
    pub fn to_event(self) -> TransportEvent {
        let beats = self.pos_beats();
        let bar_len = self.beats_per_bar();
        let bar_number = (beats / bar_len).floor();
        let mut flags =
            TransportFlags::HAS_TEMPO | TransportFlags::HAS_BEATS_TIMELINE | TransportFlags::HAS_SECONDS_TIMELINE | TransportFlags::HAS_TIME_SIGNATURE;
        if self.playing {
            flags |= TransportFlags::IS_PLAYING;
        }
        if self.recording {
            flags |= TransportFlags::IS_RECORDING;
        }
        let (loop_start, loop_end) = self.loop_samples.unwrap_or((0, 0));
        if self.loop_samples.is_some() {
            flags |= TransportFlags::IS_LOOP_ACTIVE;
        }
        TransportEvent {
            header: EventHeader::new_core(0, EventFlags::empty()),
            flags,
            song_pos_beats: BeatTime::from_float(beats),
            song_pos_seconds: SecondsTime::from_float(self.pos_seconds()),
            tempo: self.tempo,
            tempo_inc: 0.0,
            loop_start_beats: BeatTime::from_float(self.samples_to_beats(loop_start)),
            loop_end_beats: BeatTime::from_float(self.samples_to_beats(loop_end)),
            loop_start_seconds: SecondsTime::from_float(self.samples_to_seconds(loop_start)),
            loop_end_seconds: SecondsTime::from_float(self.samples_to_seconds(loop_end)),
            bar_start: BeatTime::from_float(bar_number * bar_len),
            bar_number: bar_number as i32,
            time_signature_numerator: self.time_sig.0,
            time_signature_denominator: self.time_sig.1,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Plugin instance
// ---------------------------------------------------------------------------------------------

/// An audio-ports configuration the plugin offers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortConfig {
    pub id: u32,
    pub name: String,
    pub input_channels: Option<u32>,
    pub output_channels: Option<u32>,
}

/// What one `process` call produced.
#[derive(Debug)]
pub struct Processed {
    /// Planar output, one `Vec` per channel, as long as the input block.
    pub audio: Vec<Vec<f32>>,
    pub status: ProcessStatus,
}

struct Active {
    processor: Option<PluginAudioProcessor<TestHost>>,
    sample_rate: f64,
    max_block: usize,
    channels: usize,
    in_ports: AudioPorts,
    out_ports: AudioPorts,
    in_bufs: Vec<Vec<f32>>,
    out_bufs: Vec<Vec<f32>>,
    steady_time: u64,
}

/// One plugin instance, with its activation state.
pub struct Plugin {
    instance: PluginInstance<TestHost>,
    active: Option<Active>,
    /// Parameter changes sent with the next `process` call, at its first frame.
    pending_params: Vec<(ClapId, f64)>,
}

/// A parameter as `clap.params` describes it.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub id: ClapId,
    pub min: f64,
    pub max: f64,
}

impl Plugin {
    // --- extensions -----------------------------------------------------------------------

    fn audio_ports_config_ext(&mut self) -> Option<PluginAudioPortsConfig> {
        self.instance.plugin_handle().get_extension()
    }

    fn audio_ports_ext(&mut self) -> Option<PluginAudioPorts> {
        self.instance.plugin_handle().get_extension()
    }

    fn state_ext(&mut self) -> HostResult<PluginState> {
        self.instance.plugin_handle().get_extension().ok_or(HostError::MissingExtension("clap.state"))
    }

    /// The audio-ports configurations the plugin offers (empty if it lacks the extension).
    pub fn port_configs(&mut self) -> Vec<PortConfig> {
        let Some(ext) = self.audio_ports_config_ext() else {
            return Vec::new();
        };
        let handle = self.instance.plugin_handle();
        let mut buf = AudioPortsConfigBuffer::new();
        (0..ext.count(&handle))
            .filter_map(|i| {
                ext.get(&handle, i, &mut buf).map(|c| PortConfig {
                    id: c.id.get(),
                    name: String::from_utf8_lossy(c.name).into_owned(),
                    input_channels: c.main_input.map(|p| p.channel_count),
                    output_channels: c.main_output.map(|p| p.channel_count),
                })
            })
            .collect()
    }

    /// Channel counts of the main input and output ports in the current configuration, as the
    /// audio-ports extension reports them (`None` where there is no such port).
    pub fn main_port_channels(&mut self) -> HostResult<(Option<u32>, Option<u32>)> {
        let ext = self.audio_ports_ext().ok_or(HostError::MissingExtension("clap.audio-ports"))?;
        let handle = self.instance.plugin_handle();
        let mut buf = AudioPortInfoBuffer::new();
        let mut main = |is_input: bool| {
            if ext.count(&handle, is_input) == 0 {
                return None;
            }
            ext.get(&handle, 0, is_input, &mut buf).map(|info| info.channel_count)
        };
        Ok((main(true), main(false)))
    }

    /// Selects the audio-ports configuration with `channels` in and `channels` out.
    /// The plugin must be inactive.
    pub fn select_channels(&mut self, channels: usize) -> HostResult<()> {
        if self.active.is_some() {
            return Err(HostError::Other("port configs can only be selected while inactive".into()));
        }
        let want = Some(channels as u32);
        let config =
            self.port_configs().into_iter().find(|c| c.input_channels == want && c.output_channels == want).ok_or(HostError::NoPortConfig(channels))?;
        let ext = self.audio_ports_config_ext().ok_or(HostError::MissingExtension("clap.audio-ports-config"))?;
        let handle = self.instance.plugin_handle();
        ext.select(&handle, ClapId::new(config.id)).map_err(|e| HostError::Other(format!("selecting port config {config:?}: {e}")))?;
        let now = self.main_port_channels()?;
        if now != (want, want) {
            return Err(HostError::Other(format!("selected {channels}-channel config but audio-ports reports {now:?}")));
        }
        Ok(())
    }

    /// Switches between realtime and offline rendering (`clap.render`).
    pub fn set_render_mode(&mut self, offline: bool) -> HostResult<()> {
        let ext: PluginRender = self.instance.plugin_handle().get_extension().ok_or(HostError::MissingExtension("clap.render"))?;
        let mode = if offline { RenderMode::Offline } else { RenderMode::Realtime };
        let handle = self.instance.plugin_handle();
        ext.set(&handle, mode).map_err(|e| HostError::Other(format!("render mode: {e}")))
    }

    /// The parameter named `name` (`clap.params`).
    pub fn param(&mut self, name: &str) -> HostResult<Param> {
        let ext: PluginParams = self.instance.plugin_handle().get_extension().ok_or(HostError::MissingExtension("clap.params"))?;
        let handle = self.instance.plugin_handle();
        let mut buf = ParamInfoBuffer::new();
        (0..ext.count(&handle))
            .filter_map(|i| {
                ext.get_info(&handle, i, &mut buf)
                    .map(|info| (String::from_utf8_lossy(info.name).into_owned(), Param { id: info.id, min: info.min_value, max: info.max_value }))
            })
            .find(|(n, _)| n == name)
            .map(|(_, p)| p)
            .ok_or_else(|| HostError::Other(format!("no parameter named {name}")))
    }

    /// Sets a parameter (its plain value) at the start of the next processed block, as a
    /// host's automation would.
    pub fn set_param(&mut self, param: Param, value: f64) {
        self.pending_params.push((param.id, value));
    }

    // --- life cycle -----------------------------------------------------------------------

    /// Selects the `channels`-in/`channels`-out port config, then activates the plugin for
    /// blocks of 1..=`max_block` frames at `sample_rate`.
    pub fn activate(&mut self, sample_rate: f64, max_block: usize, channels: usize) -> HostResult<()> {
        if self.active.is_some() {
            self.deactivate();
        }
        assert!(max_block > 0 && channels > 0);
        self.select_channels(channels)?;
        let config = PluginAudioConfiguration { sample_rate, min_frames_count: 1, max_frames_count: max_block as u32 };
        let processor = self.instance.activate(|_, _| (), config)?;
        self.active = Some(Active {
            processor: Some(processor.into()),
            sample_rate,
            max_block,
            channels,
            in_ports: AudioPorts::with_capacity(channels, 1),
            out_ports: AudioPorts::with_capacity(channels, 1),
            in_bufs: vec![vec![0.0; max_block]; channels],
            out_bufs: vec![vec![0.0; max_block]; channels],
            steady_time: 0,
        });
        self.pump_main_thread();
        Ok(())
    }

    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// (sample rate, max block, channels) of the current activation.
    pub fn activation(&self) -> Option<(f64, usize, usize)> {
        self.active.as_ref().map(|a| (a.sample_rate, a.max_block, a.channels))
    }

    /// Stops processing (on an audio thread) and deactivates. No-op when inactive.
    pub fn deactivate(&mut self) {
        let Some(mut active) = self.active.take() else {
            return;
        };
        let processor = active.processor.take().expect("processor present");
        let stopped = std::thread::scope(|s| s.spawn(move || processor.into_stopped()).join().expect("audio thread panicked in stop_processing"));
        self.instance.deactivate(stopped);
        self.pump_main_thread();
    }

    /// Processes one block. `input` is planar: one slice per channel, all the same length
    /// (1..=max_block). `transport` describes the song position of the block's first sample.
    pub fn process(&mut self, input: &[&[f32]], transport: Option<&Transport>) -> HostResult<Processed> {
        let active = self.active.as_mut().ok_or_else(|| HostError::Other("process() on an inactive plugin".into()))?;
        let frames = input.first().map_or(0, |c| c.len());
        if input.len() != active.channels {
            return Err(HostError::Other(format!("got {} input channels, activated with {}", input.len(), active.channels)));
        }
        if frames == 0 || frames > active.max_block || input.iter().any(|c| c.len() != frames) {
            return Err(HostError::Other(format!(
                "block of {frames} frames (max {}), channel lengths {:?}",
                active.max_block,
                input.iter().map(|c| c.len()).collect::<Vec<_>>()
            )));
        }
        for (buf, src) in active.in_bufs.iter_mut().zip(input) {
            buf[..frames].copy_from_slice(src);
        }
        for buf in &mut active.out_bufs {
            buf.fill(f32::NAN);
        }
        let transport_event = transport.copied().map(Transport::to_event);
        let steady_time = active.steady_time;
        let mut param_events = EventBuffer::new();
        for (id, value) in self.pending_params.drain(..) {
            param_events.push(&ParamValueEvent::new(0, id, Pckn::match_all(), value));
        }

        let Active { processor, in_ports, out_ports, in_bufs, out_bufs, .. } = active;
        let processor = processor.as_mut().expect("processor present");

        // Run the plugin's process() on a separate thread, as a host's audio thread would.
        let status = std::thread::scope(|s| {
            s.spawn(move || -> HostResult<ProcessStatus> {
                let started = processor.ensure_processing_started()?;
                let inputs = in_ports.with_input_buffers([AudioPortBuffer {
                    latency: 0,
                    channels: AudioPortBufferType::f32_input_only(in_bufs.iter_mut().map(|b| InputChannel::variable(&mut b[..frames]))),
                }]);
                let mut outputs = out_ports.with_output_buffers([AudioPortBuffer {
                    latency: 0,
                    channels: AudioPortBufferType::f32_output_only(out_bufs.iter_mut().map(|b| &mut b[..frames])),
                }]);
                let status = started.process(
                    &inputs,
                    &mut outputs,
                    &InputEvents::from_buffer(&param_events),
                    &mut OutputEvents::void(),
                    Some(steady_time),
                    transport_event.as_ref(),
                )?;
                Ok(status)
            })
            .join()
            .expect("audio thread panicked in process")
        })?;

        active.steady_time += frames as u64;
        let audio = active.out_bufs.iter().map(|b| b[..frames].to_vec()).collect();
        self.pump_main_thread();
        Ok(Processed { audio, status })
    }

    /// Calls the plugin's `reset` (on an audio thread). No-op when inactive.
    pub fn reset(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        let processor = active.processor.as_mut().expect("processor present");
        std::thread::scope(|s| s.spawn(move || processor.reset()).join().expect("audio thread panicked in reset"));
        active.steady_time = 0;
        self.pump_main_thread();
    }

    // --- state ----------------------------------------------------------------------------

    /// The plugin's state blob (`clap.state` save).
    pub fn save_state(&mut self) -> HostResult<Vec<u8>> {
        let ext = self.state_ext()?;
        let mut out = Vec::new();
        let handle = self.instance.plugin_handle();
        ext.save(&handle, &mut out).map_err(|e| HostError::Other(format!("state save: {e}")))?;
        self.pump_main_thread();
        Ok(out)
    }

    /// Loads a state blob (`clap.state` load).
    pub fn load_state(&mut self, state: &[u8]) -> HostResult<()> {
        let ext = self.state_ext()?;
        let handle = self.instance.plugin_handle();
        let result = ext.load(&handle, &mut Cursor::new(state)).map_err(|e| HostError::Other(format!("state load: {e}")));
        self.pump_main_thread();
        result
    }

    /// How many times the plugin marked its state dirty.
    pub fn dirty_marks(&self) -> u32 {
        self.instance.access_handler(|h| h.dirty_marks.get())
    }

    // --- host callbacks -------------------------------------------------------------------

    /// Runs the plugin's `on_main_thread` if it asked for it (as a host's event loop would).
    pub fn pump_main_thread(&mut self) {
        // A callback may request another; bound the loop anyway.
        for _ in 0..16 {
            let requested = self.instance.access_shared_handler(|h| h.callback_requested.swap(false, Ordering::SeqCst));
            if !requested {
                break;
            }
            self.instance.call_on_main_thread_callback();
        }
    }

    /// Whether the plugin has called `request_restart` (and clears the flag).
    pub fn take_restart_request(&self) -> bool {
        self.instance.access_shared_handler(|h| h.restart_requested.swap(false, Ordering::SeqCst))
    }

    /// Whether the plugin has called `request_process` (and clears the flag).
    pub fn take_process_request(&self) -> bool {
        self.instance.access_shared_handler(|h| h.process_requested.swap(false, Ordering::SeqCst))
    }
}

impl Drop for Plugin {
    fn drop(&mut self) {
        // Deactivate before the instance is destroyed; a leaked processor would leak the
        // whole instance. Skip while unwinding from a panic on an audio thread.
        if !std::thread::panicking() {
            self.deactivate();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Test signals and comparisons
// ---------------------------------------------------------------------------------------------

/// A deterministic test signal: a sine per channel (different frequencies) plus seeded white
/// noise, at about -6 dBFS peak. Planar, `channels` × `frames`.
pub fn test_signal(channels: usize, frames: usize, sample_rate: f64, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64*
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        let x = rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    (0..channels)
        .map(|ch| {
            let freq = 440.0 * (1.0 + ch as f64 * 0.5);
            (0..frames)
                .map(|n| {
                    let t = n as f64 / sample_rate;
                    let sine = (2.0 * std::f64::consts::PI * freq * t).sin() as f32;
                    0.35 * sine + 0.15 * next()
                })
                .collect()
        })
        .collect()
}

/// Index of the first sample where `a` and `b` differ bit-for-bit (or length differs).
pub fn first_bit_difference(a: &[f32], b: &[f32]) -> Option<usize> {
    if a.len() != b.len() {
        return Some(a.len().min(b.len()));
    }
    a.iter().zip(b).position(|(x, y)| x.to_bits() != y.to_bits())
}

/// Asserts that planar `actual` equals `expected` bit for bit.
#[track_caller]
pub fn assert_bit_exact(actual: &[Vec<f32>], expected: &[Vec<f32>], what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: channel count differs");
    for (ch, (a, e)) in actual.iter().zip(expected).enumerate() {
        if let Some(i) = first_bit_difference(a, e) {
            panic!("{what}: channel {ch} differs at sample {i} of {}: got {:?}, expected {:?}", e.len(), a.get(i), e.get(i));
        }
    }
}

/// Runs `signal` through `plugin` in blocks whose sizes cycle through `block_sizes` (a block
/// that would cross the loop's end is cut there, as hosts do), with a playing transport that
/// advances with every block; returns the concatenated output.
/// Calls `between(block_index, plugin)` after each block (e.g. to `reset`).
pub fn run_blocks(
    plugin: &mut Plugin,
    signal: &[Vec<f32>],
    block_sizes: &[usize],
    transport: &mut Transport,
    mut between: impl FnMut(usize, &mut Plugin),
) -> Vec<Vec<f32>> {
    let total = signal[0].len();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(total); signal.len()];
    let mut pos = 0;
    let mut block = 0;
    while pos < total {
        let mut n = block_sizes[block % block_sizes.len()].min(total - pos);
        // Hosts split a block at the loop's end, so that one block's frames are contiguous.
        if let (true, Some((_, end))) = (transport.playing, transport.loop_samples) {
            if transport.pos_samples < end {
                n = n.min((end - transport.pos_samples) as usize);
            }
        }
        let input: Vec<&[f32]> = signal.iter().map(|c| &c[pos..pos + n]).collect();
        let processed = plugin.process(&input, Some(transport)).unwrap_or_else(|e| panic!("process block {block} ({n} frames at {pos}): {e}"));
        for (o, p) in out.iter_mut().zip(processed.audio) {
            o.extend_from_slice(&p);
        }
        transport.advance(n);
        pos += n;
        between(block, plugin);
        block += 1;
    }
    out
}
