//! Restoring inside the plugin, through the bundled `.clap` in a real CLAP host, on the
//! fixture's tiny model. After a take is captured and a gap marked, switching *Restore* on
//! runs the job in the background; the restoration (exactly what the engine makes of the
//! take) then plays with Listen on Restored, in sync through seeks, loop jumps, resets and
//! odd blocks; the *Guidance strength* control reaches it; *Mix* blends it with the input; an offline bounce waits for a job still
//! running instead of bouncing the unrestored track; and the restoration survives a reload
//! into a fresh instance without being made again.
//!
//! The marks and the model folder are what the editor edits; here they reach the plugin
//! the way a host's project does, through the saved state.

mod golden;
mod host;

use dgg_restore::audio::AudioClip;
use dgg_restore::engine::restore_clip;
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::plugin::capture::Take;
use dgg_restore::plugin::clips::ClipStore;
use dgg_restore::plugin::params::DggParams;
use dgg_restore::plugin::settings::{Choices, Marks, Preferences};
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::operators::TaskKind;
use golden::Golden;
use host::sync::{alloc_checked, assert_synced, Placed, Play, Rig, MAX_BLOCK, RATE, START, TAKE, TEMPO};
use host::{run_blocks, test_signal, Bundle, Plugin, Transport};
use nice_plug::prelude::Param;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STEPS: usize = 2;
/// The gap marked in the take, in seconds from its start.
const GAP: (f64, f64) = (0.2, 0.3);

/// A saved state with some of its persistent fields replaced by `fields` (name, value).
/// (nice-plug's CLAP state is the JSON's length as a little-endian u64, then the JSON, whose
/// persistent fields are JSON strings.)
fn with_fields(saved: &[u8], fields: &[(&str, String)]) -> Vec<u8> {
    let mut state: serde_json::Value = serde_json::from_slice(&saved[8..]).unwrap();
    let saved_fields = state["fields"].as_object_mut().expect("nice-plug's state has persistent fields");
    for (name, value) in fields {
        saved_fields.insert(name.to_string(), value.clone().into());
    }
    let json = serde_json::to_vec(&state).unwrap();
    [&(json.len() as u64).to_le_bytes()[..], &json].concat()
}

fn json(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap()
}

/// Sets the marks and preferences, as the editor would.
fn set_fields(plugin: &mut Plugin, marks: &Marks, preferences: &Preferences) {
    let state = with_fields(&plugin.save_state().unwrap(), &[("marks", json(marks)), ("preferences", json(preferences))]);
    plugin.load_state(&state).unwrap();
}

fn marks() -> Marks {
    Marks { gaps: vec![GAP], seed: 5, ..Marks::default() }
}

/// The tiny model (a copy the test may write its cache into) and the release bundle.
fn model_and_bundle() -> (tempfile::TempDir, Bundle) {
    (Golden::load().copy_dir(), Bundle::load_default())
}

/// What the engine makes of `take` with the settings the plugin is given.
fn engine_restoration(model: &Path, take: &[Vec<f32>], steps: usize, strength: f64) -> Vec<Vec<f32>> {
    let choices = Choices { task: TaskKind::Inpaint, method: MethodKind::Dgg, strength, steps };
    let request = marks().request(choices).unwrap();
    let prior = AudioLdm2::load_for_prompt(model, &LoadOptions::default(), "", 1.0).unwrap();
    restore_clip(&prior, &AudioClip::new(RATE as u32, take.to_vec()), &request, &mut |_| ControlFlow::Continue(())).unwrap().channels
}

/// Captures `take`, marks the gap, points the plugin at the tiny model and sets the steps.
fn prepared(bundle: &Bundle, model: &Path, take: &[Vec<f32>], steps: usize, offline: bool) -> Rig {
    let mut rig = Rig::rendering(bundle, RATE, offline);
    rig.capture(take);
    set_fields(&mut rig.plugin, &marks(), &Preferences { model_dir: Some(model.to_path_buf()), ..Preferences::default() });
    // nice-plug shows a stepped parameter to CLAP hosts as 0..=its step count: 1 step is 0.
    let steps_param = rig.plugin.param("Steps").unwrap();
    rig.plugin.set_param(steps_param, (steps - 1) as f64);
    rig.tick(0, false, 64);
    rig
}

/// Switches Restore on (with the transport stopped, away from the take).
fn press_restore(rig: &mut Rig) {
    rig.plugin.set_param(rig.restore, rig.restore.max);
    rig.tick(0, false, 64);
}

/// Plays the region until the restoration comes back (or two minutes pass); returns it.
fn wait_for_restoration(rig: &mut Rig, expected: &[Vec<f32>]) {
    rig.listen("Restored");
    let probe = 11_000; // inside the gap (0.2–0.3 s = frames 9 600–14 400)
    let deadline = Instant::now() + Duration::from_secs(120);
    while rig.tick(START + probe as i64, true, 64)[0] != expected[0][probe..probe + 64] {
        assert!(Instant::now() < deadline, "the restoration never came back to play");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_restoration_made_in_the_plugin_plays_in_sync_mixes_and_survives_a_reload() {
    let (model, bundle) = model_and_bundle();
    let take = test_signal(2, TAKE, RATE, 21);
    let expected = engine_restoration(model.path(), &take, STEPS, 1.0);
    assert_ne!(expected, take, "the gap is filled");

    let mut rig = prepared(&bundle, model.path(), &take, STEPS, false);
    let started = Instant::now();
    press_restore(&mut rig);
    wait_for_restoration(&mut rig, &expected);
    let placed = Placed { take: &expected, start: START, rate: RATE };
    assert_synced(&mut rig, &placed, Play::at(START - 2_000, 5_000));
    assert_synced(&mut rig, &placed, Play::at(START + 9_000, 3_000));
    let looped = Some((START + TAKE as i64 - 3_000, START + TAKE as i64 + 1_000));
    assert_synced(&mut rig, &placed, Play { looped, reset_every: Some(4), ..Play::at(START + TAKE as i64 - 2_000, 6_000) });

    // Half the mix: halfway between the input and the restoration, once the smoother settled.
    let mix = rig.plugin.param("Mix").unwrap();
    rig.plugin.set_param(mix, 0.5);
    let input = test_signal(2, 4_000, RATE, 3);
    let out = run_blocks(&mut rig.plugin, &input, &[256], &mut Transport::playing(RATE, TEMPO).at(START + 5_000), |_, _| {});
    for n in 2_000..4_000 {
        let want = input[0][n] + 0.5 * (expected[0][5_000 + n] - input[0][n]);
        assert!((out[0][n] - want).abs() < 1e-5, "frame {n}: {} for {want}", out[0][n]);
    }
    rig.plugin.set_param(mix, 1.0);
    for _ in 0..4 {
        rig.tick(0, false, MAX_BLOCK);
    }

    // A fresh instance with the saved project (Restore on) plays the restoration at once
    // and does not make it again: with another seed in its marks, a new job would change it.
    let state = with_fields(&rig.plugin.save_state().unwrap(), &[("marks", json(&Marks { seed: 6, ..marks() }))]);
    let mut reopened = Rig::new(&bundle, RATE);
    reopened.plugin.load_state(&state).unwrap();
    reopened.listen("Restored");
    assert_synced(&mut reopened, &placed, Play::at(START + 8_000, 4_000));
    let job_time = started.elapsed();
    let until = Instant::now() + 3 * job_time;
    while Instant::now() < until {
        reopened.tick(0, false, 64);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_synced(&mut reopened, &placed, Play::at(START + 8_000, 4_000));
    reopened.listen("Original");
    assert_synced(&mut reopened, &Placed { take: &take, start: START, rate: RATE }, Play::at(START + 8_000, 4_000));
}

#[test]
fn the_guidance_strength_control_reaches_the_restoration() {
    let (model, bundle) = model_and_bundle();
    let take = test_signal(2, TAKE, RATE, 24);
    let stronger = engine_restoration(model.path(), &take, STEPS, 3.0);
    assert_ne!(stronger, engine_restoration(model.path(), &take, STEPS, 1.0), "the strength matters");

    let mut rig = prepared(&bundle, model.path(), &take, STEPS, false);
    // A continuous parameter reaches a CLAP host normalised (0..=1).
    let strength = rig.plugin.param("Guidance strength").unwrap();
    rig.plugin.set_param(strength, DggParams::default().strength.preview_normalized(3.0) as f64);
    rig.tick(0, false, 64);
    press_restore(&mut rig);
    wait_for_restoration(&mut rig, &stronger);
    assert_synced(&mut rig, &Placed { take: &stronger, start: START, rate: RATE }, Play::at(START + 8_000, 8_000));
}

#[test]
fn an_offline_bounce_waits_for_the_restoration_and_real_time_does_not() {
    let (model, bundle) = model_and_bundle();
    let take = test_signal(2, TAKE, RATE, 22);
    let steps = 6;
    let expected = engine_restoration(model.path(), &take, steps, 1.0);

    // Offline: the first pass over the region already holds the restoration.
    let mut offline = prepared(&bundle, model.path(), &take, steps, true);
    offline.listen("Restored");
    press_restore(&mut offline);
    assert_synced(&mut offline, &Placed { take: &expected, start: START, rate: RATE }, Play::at(START - 1_000, TAKE + 2_000));

    // In real time the audio thread never waits: right after Restore it plays the input.
    let mut live = prepared(&bundle, model.path(), &take, 200, false);
    live.listen("Restored");
    press_restore(&mut live);
    let input = test_signal(2, 2_000, RATE, 4);
    let out = run_blocks(&mut live.plugin, &input, &[512], &mut Transport::playing(RATE, TEMPO).at(START + 10_000), |_, _| {});
    assert_eq!(out, input, "no restoration yet: the input passes");
    live.plugin.set_param(live.restore, live.restore.min);
    live.tick(0, false, 64);
}

/// The audio-thread side of restoring — the Restore switch, an offline block waiting, the
/// smoothed mix, a restoration arriving and the clips it replaces leaving — never
/// allocates or frees. (The job fails at once, for want of a gap: the model runs on the
/// worker thread, not the audio thread; the restoration then arrives with a state load,
/// through the same mailbox a finished job uses.)
#[test]
fn restoring_never_allocates_on_the_audio_thread() {
    let bundle = alloc_checked();
    let take = test_signal(2, 4_800, RATE, 23);
    let mut rig = Rig::rendering(&bundle, RATE, true);
    rig.capture(&take);
    rig.listen("Restored");
    let mix = rig.plugin.param("Mix").unwrap();
    rig.plugin.set_param(mix, 0.25);
    press_restore(&mut rig);
    let input = test_signal(2, 8_000, RATE, 5);
    let out = run_blocks(&mut rig.plugin, &input, &[1, 333, 512], &mut Transport::playing(RATE, TEMPO).at(START - 1_000), |_, _| {});
    assert_eq!(out, input, "the job failed: nothing restored, the input passes");

    let original = Arc::new(Take::new(AudioClip::new(RATE as u32, take.clone()), START));
    let restored = Arc::new(Take::new(AudioClip::new(RATE as u32, test_signal(2, 4_800, RATE, 24)), START));
    let clips = ClipStore { original: Some(original), restored: Some(restored.clone()) };
    let state = with_fields(&rig.plugin.save_state().unwrap(), &[("clips", json(&clips))]);
    rig.plugin.load_state(&state).unwrap();
    let out = run_blocks(&mut rig.plugin, &input, &[1, 333, 512], &mut Transport::playing(RATE, TEMPO).at(START - 1_000), |_, _| {});
    for n in 2_000..4_000 {
        let want = input[0][n] + 0.25 * (restored.clip.channels[0][n - 1_000] - input[0][n]);
        assert!((out[0][n] - want).abs() < 1e-5, "frame {n}: {} for {want}", out[0][n]);
    }
}
