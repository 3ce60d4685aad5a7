//! Capture and transport-synced playback through the bundled `.clap` in a real CLAP host:
//! the *Capture* switch records the track over a moving transport until it stops; with
//! *Listen* on Original the take then plays at exactly its timeline positions through odd
//! block sizes, seeks, loop jumps and `reset`; it survives a state save/load into a fresh
//! instance and a sample-rate change.
//!
//! Every test runs twice: on the release bundle (`cargo xtask bundle dgg_restore --release`
//! or `$DGG_CLAP_BUNDLE`), and on a debug build with nice-plug's `assert_process_allocs`,
//! which aborts the process on any allocation or free inside `process`: build it with
//! `cargo build --lib --features assert_process_allocs --target-dir target/alloc-check`
//! (the README's test command does).

mod host;

use dgg_restore::audio::resample;
use dgg_restore::plugin::playback::edge_fade;
use host::{run_blocks, test_signal, Bundle, Param, Plugin, Transport, PLUGIN_ID};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The plugin library built with allocation checks on the audio thread.
fn alloc_checked() -> Bundle {
    let name = format!("{}dgg_restore{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/alloc-check/debug").join(name);
    assert!(
        path.is_file(),
        "{} is missing: cargo build --lib --features assert_process_allocs --target-dir target/alloc-check",
        path.display()
    );
    Bundle::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const RATE: f64 = 48_000.0;
const MAX_BLOCK: usize = 512;
const BLOCKS: &[usize] = &[1, 64, 333, 512, 7, 255];
const TEMPO: f64 = 120.0;
/// Where the take starts on the timeline, and how long it is.
const START: i64 = 96_000;
const TAKE: usize = 24_000;

struct Rig {
    plugin: Plugin,
    capture: Param,
    listen: Param,
}

/// The plain value of a Listen mode, as the host sees the enum parameter.
fn listen_value(p: Param, mode: &str) -> f64 {
    let index = ["Restored", "Original", "Input"].iter().position(|m| *m == mode).unwrap() as f64;
    p.min + index * (p.max - p.min) / 2.0
}

impl Rig {
    fn new(bundle: &Bundle, rate: f64) -> Self {
        let mut plugin = bundle.instantiate(PLUGIN_ID);
        plugin.activate(rate, MAX_BLOCK, 2).unwrap();
        let capture = plugin.param("Capture").unwrap();
        let listen = plugin.param("Listen").unwrap();
        Self { plugin, capture, listen }
    }

    fn listen(&mut self, mode: &str) {
        let value = listen_value(self.listen, mode);
        self.plugin.set_param(self.listen, value);
    }

    /// One block of silence at `pos` with the transport playing or stopped.
    fn tick(&mut self, pos: i64, playing: bool, frames: usize) -> Vec<Vec<f32>> {
        let t = if playing { Transport::playing(RATE, TEMPO) } else { Transport::stopped(RATE, TEMPO) }.at(pos);
        let silence = vec![0.0f32; frames];
        self.plugin.process(&[&silence, &silence], Some(&t)).unwrap().audio
    }

    /// Records `signal` from `START` with the Capture switch, then stops the transport and
    /// waits until the take plays back (the background thread filed it).
    fn capture(&mut self, signal: &[Vec<f32>]) {
        self.plugin.set_param(self.capture, self.capture.max);
        let mut transport = Transport::playing(RATE, TEMPO).at(START);
        run_blocks(&mut self.plugin, signal, BLOCKS, &mut transport, |_, _| {});
        self.tick(transport.pos_samples, false, 64);
        self.plugin.set_param(self.capture, self.capture.min);
        self.listen("Original");
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.tick(START + 1_000, true, 64)[0] != signal[0][1_000..1_064] {
            assert!(Instant::now() < deadline, "the take never came back to play");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A take as it should sound: its audio at the host `rate`, from timeline position `start`.
struct Placed<'a> {
    take: &'a [Vec<f32>],
    start: i64,
    rate: f64,
}

/// A stretch of playback: `frames` from `pos`, optionally looping and with resets.
struct Play {
    pos: i64,
    frames: usize,
    looped: Option<(i64, i64)>,
    reset_every: Option<usize>,
}

impl Play {
    fn at(pos: i64, frames: usize) -> Self {
        Self { pos, frames, looped: None, reset_every: None }
    }
}

/// Plays fresh input as `play` says, in odd blocks, and checks every output frame against
/// where it is on the timeline: the take exactly inside it (past the edge fades), the input
/// exactly outside it, a mix of the two in the fades.
#[track_caller]
fn assert_synced(rig: &mut Rig, expected: &Placed, play: Play) {
    let Placed { take, start, rate } = *expected;
    let Play { pos, frames, looped, reset_every } = play;
    let input = test_signal(2, frames, rate, pos as u64);
    let mut transport = Transport::playing(rate, TEMPO).at(pos);
    transport.loop_samples = looped;
    let mut positions = Vec::with_capacity(frames);
    let mut t = transport;
    for _ in 0..frames {
        positions.push(t.pos_samples);
        t.advance(1);
    }
    let out = run_blocks(&mut rig.plugin, &input, BLOCKS, &mut transport, |block, plugin| {
        if reset_every.is_some_and(|k| block % k == k - 1) {
            plugin.reset();
        }
    });
    let (len, fade) = (take[0].len() as i64, edge_fade(rate as f32) as i64);
    for (c, (o, x)) in out.iter().zip(&input).enumerate() {
        for (n, &p) in positions.iter().enumerate() {
            let k = p - start;
            let what = format!("channel {c}, frame {n} at timeline {p} (take frame {k})");
            if !(0..len).contains(&k) {
                assert_eq!(o[n].to_bits(), x[n].to_bits(), "{what}: expected the input");
            } else if (fade..len - fade).contains(&k) {
                assert_eq!(o[n].to_bits(), take[c][k as usize].to_bits(), "{what}: expected the take");
            } else {
                let (lo, hi) = (x[n].min(take[c][k as usize]), x[n].max(take[c][k as usize]));
                assert!((lo - 1e-6..=hi + 1e-6).contains(&o[n]), "{what}: {} outside the fade's range {lo}..{hi}", o[n]);
            }
        }
    }
}

#[test]
fn a_captured_take_plays_in_sync_through_seeks_loops_and_resets() {
    capture_and_play(&Bundle::load_default());
}

#[test]
fn capture_and_playback_never_allocate_on_the_audio_thread() {
    capture_and_play(&alloc_checked());
    reload_and_rate_change(&alloc_checked());
}

#[test]
fn the_take_survives_a_project_reload_and_a_sample_rate_change() {
    reload_and_rate_change(&Bundle::load_default());
}

fn capture_and_play(bundle: &Bundle) {
    let mut rig = Rig::new(bundle, RATE);
    let take = test_signal(2, TAKE, RATE, 7);
    rig.capture(&take);
    let placed = Placed { take: &take, start: START, rate: RATE };

    // Across the start edge, a seek into the middle, across the end edge.
    assert_synced(&mut rig, &placed, Play::at(START - 3_000, 6_000));
    assert_synced(&mut rig, &placed, Play::at(START + 10_000, 2_000));
    assert_synced(&mut rig, &placed, Play::at(START + TAKE as i64 - 1_000, 3_000));
    // A loop that wraps from after the take's end back to before its start, with resets
    // between blocks (some CLAP hosts reset around every start of processing).
    let looped = Some((START - 500, START + TAKE as i64 + 500));
    assert_synced(&mut rig, &placed, Play { looped, reset_every: Some(3), ..Play::at(START + TAKE as i64 - 200, 3_000) });

    // Listening to the input, or to a restoration that does not exist yet: pass-through.
    for mode in ["Input", "Restored"] {
        rig.listen(mode);
        let input = test_signal(2, 4_000, RATE, 99);
        let out = run_blocks(&mut rig.plugin, &input, BLOCKS, &mut Transport::playing(RATE, TEMPO).at(START), |_, _| {});
        assert_eq!(out, input, "{mode}");
    }
}

#[test]
fn a_take_cut_short_by_deactivation_is_kept() {
    let bundle = Bundle::load_default();
    let mut rig = Rig::new(&bundle, RATE);
    let take = test_signal(2, 6_000, RATE, 13);
    rig.plugin.set_param(rig.capture, rig.capture.max);
    run_blocks(&mut rig.plugin, &take, BLOCKS, &mut Transport::playing(RATE, TEMPO).at(START), |_, _| {});
    // No stop: the host deactivates while the transport plays.
    rig.plugin.deactivate();
    rig.plugin.activate(RATE, MAX_BLOCK, 2).unwrap();
    rig.listen("Original");
    assert_synced(&mut rig, &Placed { take: &take, start: START, rate: RATE }, Play::at(START - 500, 7_000));
}

fn reload_and_rate_change(bundle: &Bundle) {
    let mut rig = Rig::new(bundle, RATE);
    let take = test_signal(2, TAKE, RATE, 11);
    rig.capture(&take);
    let state = rig.plugin.save_state().unwrap();
    let placed = Placed { take: &take, start: START, rate: RATE };

    // A fresh instance with the saved state plays the same take at once.
    let mut reopened = Rig::new(bundle, RATE);
    reopened.plugin.load_state(&state).unwrap();
    reopened.listen("Original");
    assert_synced(&mut reopened, &placed, Play::at(START - 1_000, 4_000));
    assert_eq!(reopened.plugin.save_state().unwrap(), state, "saving again changes nothing");

    // At another host rate the take is resampled to the same time on the timeline.
    reopened.plugin.deactivate();
    reopened.plugin.activate(44_100.0, MAX_BLOCK, 2).unwrap();
    let resampled = resample(&take, 48_000, 44_100).unwrap();
    let start = START * 44_100 / 48_000;
    assert_synced(&mut reopened, &Placed { take: &resampled, start, rate: 44_100.0 }, Play::at(start + 2_000, 2_000));
    // ...and kept at its own rate: back at 48 kHz it is the original again, bit for bit.
    reopened.plugin.deactivate();
    reopened.plugin.activate(RATE, MAX_BLOCK, 2).unwrap();
    assert_synced(&mut reopened, &placed, Play::at(START + 5_000, 2_000));
    assert_eq!(reopened.plugin.save_state().unwrap(), state);
}
