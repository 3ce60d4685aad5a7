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
use host::sync::{alloc_checked, assert_synced, Placed, Play, Rig, BLOCKS, MAX_BLOCK, RATE, START, TAKE, TEMPO};
use host::{run_blocks, test_signal, Bundle, Transport};

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

/// `signal` with every 7th sample replaced by a subnormal of alternating sign.
fn with_subnormals(mut signal: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
    for (i, x) in signal.iter_mut().flatten().enumerate().filter(|(i, _)| i % 7 == 0) {
        *x = if i % 2 == 0 { 1e-40 } else { -f32::MIN_POSITIVE / 3.0 };
    }
    signal
}

/// Subnormals in the input pass through, and in a take play back, as zeros (validators and
/// hosts refuse subnormal output); every other sample is untouched.
#[test]
fn no_subnormal_reaches_the_output() {
    let flushed = |s: &[Vec<f32>]| -> Vec<Vec<f32>> { s.iter().map(|c| c.iter().map(|&x| if x.is_subnormal() { 0.0 } else { x }).collect()).collect() };
    let bundle = Bundle::load_default();
    let mut rig = Rig::new(&bundle, RATE);
    let input = with_subnormals(test_signal(2, 4_000, RATE, 3));
    let out = run_blocks(&mut rig.plugin, &input, BLOCKS, &mut Transport::playing(RATE, TEMPO).at(0), |_, _| {});
    assert_eq!(out, flushed(&input), "pass-through");

    let take = with_subnormals(test_signal(2, TAKE, RATE, 5));
    rig.capture(&take);
    rig.listen("Original");
    let silence = vec![vec![0.0; TAKE]; 2];
    let played = run_blocks(&mut rig.plugin, &silence, BLOCKS, &mut Transport::playing(RATE, TEMPO).at(START), |_, _| {});
    assert!(played.iter().flatten().all(|x| !x.is_subnormal()), "a subnormal in the played take (edge fades included)");
    // Inside the edge fades (5 ms) the take replaces the input exactly.
    let inner = |s: &[Vec<f32>]| -> Vec<Vec<f32>> { s.iter().map(|c| c[240..TAKE - 240].to_vec()).collect() };
    assert_eq!(inner(&played), inner(&flushed(&take)), "the take played over silence");
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
