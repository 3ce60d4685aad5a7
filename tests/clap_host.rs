//! Loads the built CLAP bundle in a real CLAP host (clack-host) and checks what a DAW relies
//! on: the factory, the stereo and mono port configs, bit-exact pass-through while nothing has
//! been restored (with a playing transport, odd block sizes, two sample rates), `reset`, the
//! offline render mode, and state save/load across instances.
//!
//! Needs the bundle: `cargo xtask bundle dgg_restore --release` (or `$DGG_CLAP_BUNDLE`).
//! Run with `cargo test --release --test clap_host`.

mod host;

use host::{assert_bit_exact, run_blocks, test_signal, Bundle, Plugin, Transport, PLUGIN_ID, PLUGIN_NAME};

/// Odd block sizes, including a single frame and the activation maximum.
const BLOCKS: &[usize] = &[1, 64, 333, 512, 7, 255];
const MAX_BLOCK: usize = 512;
const TEMPO: f64 = 123.0;

fn activated(bundle: &Bundle, sample_rate: f64, channels: usize) -> Plugin {
    let mut plugin = bundle.instantiate(PLUGIN_ID);
    plugin.activate(sample_rate, MAX_BLOCK, channels).unwrap_or_else(|e| panic!("activate({sample_rate}, {MAX_BLOCK}, {channels}): {e}"));
    plugin
}

/// Runs a quarter second of test signal through `plugin` with a playing transport and
/// asserts the output is the input, bit for bit.
#[track_caller]
fn assert_passthrough(plugin: &mut Plugin, seed: u64, what: &str) {
    let (sample_rate, _, channels) = plugin.activation().expect("plugin is active");
    let frames = (sample_rate / 4.0) as usize;
    let signal = test_signal(channels, frames, sample_rate, seed);
    let mut transport = Transport::playing(sample_rate, TEMPO).at(3 * sample_rate as i64);
    let start = transport.pos_samples;
    let out = run_blocks(plugin, &signal, BLOCKS, &mut transport, |_, _| {});
    assert_eq!(transport.pos_samples - start, frames as i64, "{what}: transport did not advance with the audio");
    assert_bit_exact(&out, &signal, what);
}

#[test]
fn factory_lists_exactly_our_plugin() {
    let bundle = Bundle::load_default();
    let descriptors = bundle.descriptors();
    assert_eq!(descriptors.len(), 1, "expected exactly one plugin in the factory, got {descriptors:#?}");
    let d = &descriptors[0];
    assert_eq!(d.id, PLUGIN_ID);
    assert_eq!(d.name, PLUGIN_NAME);
    assert_eq!(d.version, env!("CARGO_PKG_VERSION"));
    for feature in ["audio-effect", "stereo", "mono"] {
        assert!(d.features.iter().any(|f| f == feature), "feature '{feature}' missing from {:?}", d.features);
    }
    assert_eq!(bundle.clap_version().0, 1, "CLAP major version");

    // Unknown ids are refused by the factory.
    assert!(bundle.try_instantiate("org.example.not-a-plugin").is_err());

    // Both layouts are offered as port configs.
    let mut plugin = bundle.instantiate(PLUGIN_ID);
    let configs = plugin.port_configs();
    for ch in [2, 1] {
        assert!(configs.iter().any(|c| c.input_channels == Some(ch) && c.output_channels == Some(ch)), "no {ch}-in/{ch}-out port config in {configs:#?}");
    }
}

#[test]
fn stereo_passthrough_is_bit_exact_at_44k1_and_48k() {
    let bundle = Bundle::load_default();
    for (i, sample_rate) in [44_100.0, 48_000.0].into_iter().enumerate() {
        let mut plugin = activated(&bundle, sample_rate, 2);
        assert_eq!(plugin.main_port_channels().unwrap(), (Some(2), Some(2)));
        assert_passthrough(&mut plugin, 1 + i as u64, &format!("stereo @ {sample_rate} Hz"));
        plugin.deactivate();
        assert!(!plugin.is_active());
    }
}

#[test]
fn mono_passthrough_is_bit_exact() {
    let bundle = Bundle::load_default();
    let mut plugin = activated(&bundle, 48_000.0, 1);
    assert_eq!(plugin.main_port_channels().unwrap(), (Some(1), Some(1)));
    assert_passthrough(&mut plugin, 7, "mono @ 48 kHz");
}

#[test]
fn one_instance_switches_between_layouts_and_rates() {
    let bundle = Bundle::load_default();
    let mut plugin = bundle.instantiate(PLUGIN_ID);
    for (seed, (sample_rate, channels)) in [(48_000.0, 2), (44_100.0, 1), (96_000.0, 2)].into_iter().enumerate() {
        plugin.activate(sample_rate, MAX_BLOCK, channels).unwrap();
        assert_eq!(plugin.main_port_channels().unwrap(), (Some(channels as u32), Some(channels as u32)));
        assert_passthrough(&mut plugin, 10 + seed as u64, &format!("re-activated {channels} ch @ {sample_rate} Hz"));
        plugin.deactivate();
    }
}

#[test]
fn reset_between_blocks_keeps_passthrough() {
    let bundle = Bundle::load_default();
    let sample_rate = 48_000.0;
    let mut plugin = activated(&bundle, sample_rate, 2);
    let signal = test_signal(2, 12_000, sample_rate, 21);
    let mut transport = Transport::playing(sample_rate, TEMPO);
    let mut resets = 0;
    let out = run_blocks(&mut plugin, &signal, BLOCKS, &mut transport, |block, p| {
        if block % 2 == 1 {
            p.reset();
            resets += 1;
        }
    });
    assert!(resets > 5, "only {resets} resets");
    assert_bit_exact(&out, &signal, "stereo with reset between blocks");
}

#[test]
fn stopped_transport_and_offline_render_keep_passthrough() {
    let bundle = Bundle::load_default();
    let sample_rate = 44_100.0;
    let mut plugin = bundle.instantiate(PLUGIN_ID);
    plugin.set_render_mode(true).expect("offline render mode");
    plugin.activate(sample_rate, MAX_BLOCK, 2).unwrap();
    let signal = test_signal(2, 5_000, sample_rate, 33);
    let mut transport = Transport::stopped(sample_rate, TEMPO).at(1_000);
    let out = run_blocks(&mut plugin, &signal, BLOCKS, &mut transport, |_, _| {});
    assert_eq!(transport.pos_samples, 1_000, "a stopped transport must not move");
    assert_bit_exact(&out, &signal, "offline render, stopped transport");

    // No transport at all (free-running host).
    let input: Vec<&[f32]> = signal.iter().map(|c| &c[..300]).collect();
    let processed = plugin.process(&input, None).unwrap();
    let expected: Vec<Vec<f32>> = signal.iter().map(|c| c[..300].to_vec()).collect();
    assert_bit_exact(&processed.audio, &expected, "no transport");

    plugin.set_render_mode(false).expect("back to realtime");
}

#[test]
fn state_round_trips_into_a_fresh_instance() {
    let bundle = Bundle::load_default();
    let sample_rate = 48_000.0;

    let mut a = activated(&bundle, sample_rate, 2);
    assert_passthrough(&mut a, 41, "instance A before saving");
    let state = a.save_state().expect("save state from A");
    assert!(!state.is_empty(), "saved state is empty");

    // Load into a fresh, inactive instance, then activate and process.
    let mut b = bundle.instantiate(PLUGIN_ID);
    b.load_state(&state).expect("load A's state into fresh B");
    b.activate(sample_rate, MAX_BLOCK, 2).unwrap();
    assert_passthrough(&mut b, 42, "fresh instance B after loading A's state");
    assert_eq!(b.save_state().expect("save state from B"), state, "B's state after loading A's differs from A's");

    // Loading while active works too (hosts do this for presets/undo).
    b.load_state(&state).expect("load state into active B");
    assert_passthrough(&mut b, 43, "B after loading state while active");

    // A truncated state is refused, and the instance keeps working.
    let truncated = &state[..state.len() - 1];
    assert!(b.load_state(truncated).is_err(), "a truncated state blob was accepted");
    assert_passthrough(&mut b, 44, "B after refusing a corrupt state");

    // A mono instance accepts the stereo instance's state as well.
    let mut c = bundle.instantiate(PLUGIN_ID);
    c.load_state(&state).expect("load A's state into mono C");
    c.activate(sample_rate, MAX_BLOCK, 1).unwrap();
    assert_passthrough(&mut c, 45, "mono instance C after loading A's state");
}

/// Loading and unloading the plugin from several threads at once must not crash the host.
/// Runs in a child process, since the failure is a SIGSEGV at thread exit.
///
/// The hazard: the plugin's copy of Rust's std registers a pthread-key destructor on each
/// thread that calls `std::thread::current()` in it (nice-plug does, when instantiating and
/// in its main-thread checks); if another thread's `dlclose` unmaps the code before that
/// destructor runs, the exiting thread jumps into unmapped memory (rust-lang/rust#91979).
/// `build.rs` links the cdylib with `-z nodelete`, so the code stays mapped.
/// [`Bundle::load`] pins the library, so the other tests do not depend on that fix.
#[test]
fn concurrent_load_and_unload_does_not_crash() {
    const CHILD_ENV: &str = "DGG_CLAP_UNLOAD_CHILD";
    const NAME: &str = "concurrent_load_and_unload_does_not_crash";
    let path = host::existing_bundle_path();

    if std::env::var_os(CHILD_ENV).is_some() {
        // Child: rounds of threads that each load the bundle, use an instance and drop it;
        // the last one out of each round unloads the library while the others exit.
        let signal = test_signal(2, 64, 48_000.0, 1);
        for _ in 0..40 {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let bundle = Bundle::load_unpinned(&path).expect("load bundle");
                        let mut plugin = bundle.instantiate(PLUGIN_ID);
                        plugin.activate(48_000.0, 64, 2).unwrap();
                        let input: Vec<&[f32]> = signal.iter().map(|c| c.as_slice()).collect();
                        plugin.process(&input, None).unwrap();
                        plugin.save_state().unwrap();
                    });
                }
            });
        }
        return;
    }

    let exe = std::env::current_exe().expect("test executable");
    let status = std::process::Command::new(exe)
        .args(["--exact", NAME, "--ignored", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .status()
        .expect("spawn child test process");
    assert!(status.success(), "host process died while loading/unloading the plugin on several threads: {status}");
}
