//! The plugin's restorer on the fixture's tiny model: it restores the captured take in the
//! background, files the result with the clips by itself (same place on the timeline, same
//! rate, the engine's output exactly) and sends it to the deck; it refuses to start without
//! a take or with marks missing (and says so in its status), discards a result whose take
//! was replaced, and cancels.

mod golden;

use crossbeam::channel::{unbounded, Receiver};
use dgg_restore::audio::AudioClip;
use dgg_restore::engine::worker::{LoadPrior, PromptSettings};
use dgg_restore::engine::{restore_clip, RestoreRequest};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::plugin::capture::Take;
use dgg_restore::plugin::clips::{ClipStore, Clips, Deck, Role};
use dgg_restore::plugin::restorer::{Restorer, StartError, Status};
use dgg_restore::plugin::settings::Unmarked;
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::operators::{Degradation, Gap};
use dgg_restore::restore::sampler::SamplerSettings;
use golden::Golden;
use nice_plug::params::persist::PersistentField;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A loader of the tiny model that waits until the test opens the gate (a message or a
/// closed channel), so what the test does before that surely happens before the job ends.
fn gated_loader(dir: PathBuf, gate: Receiver<()>) -> impl Fn() -> LoadPrior + Send + Sync + 'static {
    move || {
        let (dir, gate) = (dir.clone(), gate.clone());
        Box::new(move |p: &PromptSettings, _: &mut dyn FnMut(String)| {
            let _ = gate.recv();
            AudioLdm2::load_for_prompt(&dir, &LoadOptions::default(), &p.prompt, p.guidance_scale).map(|m| Box::new(m) as _).map_err(|e| e.to_string())
        })
    }
}

/// 0.5 s of stereo tones at 48 kHz placed at 2 s on the timeline, 0.2–0.3 s silenced.
fn take() -> Take {
    let channel = |f: f32| -> Vec<f32> { (0..24_000).map(|n| if (9_600..14_400).contains(&n) { 0.0 } else { 0.3 * (n as f32 * f).sin() }).collect() };
    Take::new(AudioClip::new(48_000, vec![channel(0.05), channel(0.07)]), 96_000)
}

fn request(steps: usize) -> RestoreRequest {
    let gaps = Degradation::Inpaint { gaps: vec![Gap { start: 0.2, end: 0.3 }] };
    RestoreRequest::new(gaps, SamplerSettings::new(MethodKind::Dgg.with_strength(None), steps, 5))
}

fn with_take(t: &Take) -> Arc<Clips> {
    let clips = Arc::new(Clips::default());
    clips.set(ClipStore { original: Some(Arc::new(t.clone())), restored: None });
    clips
}

/// Waits until the status is final (or a minute passes).
fn settle(restorer: &Restorer) -> Status {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = restorer.status();
        if matches!(status, Status::Done | Status::Failed(_) | Status::Cancelled) {
            return status;
        }
        assert!(Instant::now() < deadline, "still {status:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_restoration_is_filed_at_the_takes_place_and_reaches_the_deck() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let original = take();
    let clips = with_take(&original);
    let (open, gate) = unbounded();
    let restorer = Restorer::new(clips.clone(), gated_loader(dir.path().to_path_buf(), gate));
    restorer.start(Ok(request(3)), PromptSettings::default()).unwrap();
    assert!(restorer.is_running() && clips.mail().is_restoring());
    drop(open);
    assert_eq!(settle(&restorer), Status::Done);
    assert!(!clips.mail().is_restoring());

    let restored = clips.read().restored.clone().expect("filed");
    assert_eq!((restored.clip.sample_rate, restored.start, restored.len()), (48_000, 96_000, 24_000));
    let prior = AudioLdm2::load_for_prompt(dir.path(), &LoadOptions::default(), "", 1.0).unwrap();
    let direct = restore_clip(&prior, &AudioClip::new(48_000, original.clip.channels.clone()), &request(3), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!(restored.clip.channels, direct.channels, "the engine's result, unchanged");
    assert_ne!(restored.clip.channels, original.clip.channels, "the gap was filled");

    clips.set_deck_rate(48_000.0);
    let mut deck = Deck::new(clips.reserve_capture(2, 100), None, None);
    deck.receive(clips.mail());
    assert_eq!(deck.clip(Role::Restored), Some(&*restored));
}

#[test]
fn no_take_stale_results_and_cancel_are_handled() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let (open, gate) = unbounded();
    let empty = Restorer::new(Arc::new(Clips::default()), gated_loader(dir.path().to_path_buf(), gate.clone()));
    let err = empty.start(Ok(request(2)), PromptSettings::default()).unwrap_err();
    assert!(matches!(err, StartError::NothingCaptured) && err.to_string().contains("Capture"), "{err}");
    assert_eq!(empty.status(), Status::Failed(err.to_string()), "the editor shows why");

    let clips = with_take(&take());
    let restorer = Restorer::new(clips.clone(), gated_loader(dir.path().to_path_buf(), gate));
    let err = restorer.start(Err(Unmarked::Gaps), PromptSettings::default()).unwrap_err();
    assert!(matches!(restorer.status(), Status::Failed(m) if m == err.to_string() && m.contains("drag over the gaps")));
    assert!(!clips.mail().is_restoring());

    // The take is replaced while its restoration runs: the result is not filed.
    restorer.start(Ok(request(2)), PromptSettings::default()).unwrap();
    clips.set(ClipStore { original: Some(Arc::new(Take { start: 0, ..take() })), restored: None });
    drop(open);
    match settle(&restorer) {
        Status::Failed(message) => assert!(message.contains("changed"), "{message}"),
        other => panic!("{other:?}"),
    }
    assert!(clips.read().restored.is_none());

    restorer.start(Ok(request(100_000)), PromptSettings::default()).unwrap();
    restorer.cancel();
    assert_eq!(settle(&restorer), Status::Cancelled);
    assert!(!restorer.is_running() && clips.read().restored.is_none() && !clips.mail().is_restoring());
}

/// Removing the plugin during a job never waits for the job: dropping the restorer returns
/// while its worker is still busy (here, loading the model until the gate opens).
#[test]
fn dropping_the_restorer_does_not_wait_for_a_running_job() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let (open, gate) = unbounded();
    let restorer = Restorer::new(with_take(&take()), gated_loader(dir.path().to_path_buf(), gate));
    restorer.start(Ok(request(2)), PromptSettings::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while restorer.status() != Status::LoadingModel {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (dropped, done) = unbounded();
    std::thread::spawn(move || {
        drop(restorer);
        dropped.send(()).unwrap();
    });
    let returned = done.recv_timeout(Duration::from_secs(30));
    drop(open);
    assert!(returned.is_ok(), "dropping the restorer waited for the job");
}

/// What loading the model says (here as a CUDA fallback would) reaches the editor through
/// the restorer, and goes when the model is released.
#[test]
fn the_loaders_notice_is_shown_while_the_model_is_loaded() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let line = "CUDA could not start (no driver): running on the CPU";
    let loader = move || -> LoadPrior {
        let dir = dir.path().to_path_buf();
        Box::new(move |p: &PromptSettings, notice: &mut dyn FnMut(String)| {
            notice(line.to_string());
            AudioLdm2::load_for_prompt(&dir, &LoadOptions::default(), &p.prompt, p.guidance_scale).map(|m| Box::new(m) as _).map_err(|e| e.to_string())
        })
    };
    let restorer = Restorer::new(with_take(&take()), loader);
    assert_eq!(restorer.notice(), None);
    restorer.start(Ok(request(2)), PromptSettings::default()).unwrap();
    assert_eq!(settle(&restorer), Status::Done);
    assert_eq!(restorer.notice().as_deref(), Some(line));
    restorer.release_model();
    let deadline = Instant::now() + Duration::from_secs(60);
    while restorer.notice().is_some() {
        assert!(Instant::now() < deadline, "the notice outlived the model");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A preview is the same job in a few tens of steps: filed as the restoration (the
/// engine's result for the previewed request, exactly) and marked as a preview until the
/// full render replaces it.
#[test]
fn a_preview_is_filed_until_the_full_render_replaces_it() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let original = take();
    let clips = with_take(&original);
    let (open, gate) = unbounded();
    drop(open);
    let restorer = Restorer::new(clips.clone(), gated_loader(dir.path().to_path_buf(), gate));
    restorer.preview(Ok(request(40)), PromptSettings::default()).unwrap();
    assert!(restorer.is_preview());
    assert_eq!(settle(&restorer), Status::Done);
    let prior = AudioLdm2::load_for_prompt(dir.path(), &LoadOptions::default(), "", 1.0).unwrap();
    let clip = AudioClip::new(48_000, original.clip.channels.clone());
    let engine = |r: &RestoreRequest| restore_clip(&prior, &clip, r, &mut |_| ControlFlow::Continue(())).unwrap().channels;
    let previewed = request(40).preview();
    assert_eq!(previewed.sampler.steps, 25);
    assert_eq!(clips.read().restored.as_ref().unwrap().clip.channels, engine(&previewed));

    restorer.start(Ok(request(3)), PromptSettings::default()).unwrap();
    assert!(!restorer.is_preview());
    assert_eq!(settle(&restorer), Status::Done);
    assert_eq!(clips.read().restored.as_ref().unwrap().clip.channels, engine(&request(3)));
}
