//! The background worker on the fixture's tiny model: it loads the prior only when a job
//! needs it, keeps it warm, runs queued jobs in order with progress, gives the same result
//! as restoring directly, cancels at once and stops a running job at the next stage
//! boundary, survives a failed load, and releases the model on request.

mod golden;

use dgg_restore::audio::AudioClip;
use dgg_restore::engine::worker::{Event, Job, JobId, LoadPrior, PromptSettings, Worker};
use dgg_restore::engine::{restore_clip, RestoreRequest};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::restore::guidance::MethodKind;
use dgg_restore::restore::operators::{Degradation, Gap};
use dgg_restore::restore::prior::{DecoderStage, LatentPrior};
use dgg_restore::restore::sampler::SamplerSettings;
use dgg_restore::restore::schedule::DdimSchedule;
use golden::Golden;
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);

/// A loader of the tiny model from `dir` that counts its loads.
fn loader(dir: PathBuf, loads: Arc<AtomicUsize>) -> LoadPrior {
    Box::new(move |p: &PromptSettings, _: &mut dyn FnMut(String)| {
        loads.fetch_add(1, Ordering::SeqCst);
        AudioLdm2::load_for_prompt(&dir, &LoadOptions::default(), &p.prompt, p.guidance_scale).map(|m| Box::new(m) as _).map_err(|e| e.to_string())
    })
}

fn job(steps: usize) -> Job {
    job_of(12_000, steps)
}

/// A job on an `n`-sample clip with a gap at 0.25–0.375 s.
fn job_of(n: usize, steps: usize) -> Job {
    let tone: Vec<f32> = (0..n).map(|k| if (4_000..6_000).contains(&k) { 0.0 } else { 0.3 * (k as f32 * 0.05).sin() }).collect();
    let degradation = Degradation::Inpaint { gaps: vec![Gap { start: 0.25, end: 0.375 }] };
    Job {
        clip: AudioClip::new(16_000, vec![tone]),
        request: RestoreRequest::new(degradation, SamplerSettings::new(MethodKind::Dgg.with_strength(None), steps, 3)),
        prompt: PromptSettings::default(),
    }
}

/// Events until `done` says stop (or a minute passes).
fn until(worker: &Worker, mut done: impl FnMut(&Event) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while let Some(e) = worker.next_event(deadline.saturating_duration_since(Instant::now())) {
        let stop = done(&e);
        seen.push(e);
        if stop {
            return seen;
        }
    }
    panic!("no final event within {WAIT:?}; saw {seen:?}");
}

fn finished(events: &[Event], id: JobId) -> &AudioClip {
    events
        .iter()
        .find_map(|e| match e {
            Event::Finished { job, clip } if *job == id => Some(clip),
            _ => None,
        })
        .unwrap_or_else(|| panic!("job {id} did not finish: {events:?}"))
}

#[test]
fn jobs_run_in_order_on_a_warm_model_and_match_a_direct_restore() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let loads = Arc::new(AtomicUsize::new(0));
    let worker = Worker::spawn(loader(dir.path().to_path_buf(), loads.clone())).unwrap();
    assert_eq!(loads.load(Ordering::SeqCst), 0, "the model loads lazily");

    let (a, b) = (worker.submit(job(3)), worker.submit(job(2)));
    let events = until(&worker, |e| matches!(e, Event::Finished { job, .. } | Event::Failed { job, .. } if *job == b));
    assert!(matches!(events[0], Event::LoadingModel), "{events:?}");
    assert_eq!(loads.load(Ordering::SeqCst), 1, "loaded once, kept warm for the second job");
    let progress: Vec<(JobId, usize, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Progress { job, progress, .. } => Some((*job, progress.step.step, progress.step.total)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(a, 1, 3), (a, 2, 3), (a, 3, 3), (b, 1, 2), (b, 2, 2)], "in order, every step");
    assert!(events.iter().any(|e| matches!(e, Event::Progress { eta: Some(_), .. })));

    // The worker's result is what restoring directly gives: same seed, same device.
    let direct = {
        let prior = AudioLdm2::load_for_prompt(dir.path(), &LoadOptions::default(), "", 1.0).unwrap();
        let j = job(3);
        restore_clip(&prior, &j.clip, &j.request, &mut |_| ControlFlow::Continue(())).unwrap()
    };
    assert_eq!(finished(&events, a), &direct);
    assert_eq!(finished(&events, b).channels[0].len(), 12_000);

    // Released on request; the next job loads it again.
    worker.release_model();
    let c = worker.submit(job(1));
    let events = until(&worker, |e| matches!(e, Event::Finished { job, .. } if *job == c));
    assert!(matches!(events[..2], [Event::ModelReleased, Event::LoadingModel]), "{events:?}");
    assert_eq!(loads.load(Ordering::SeqCst), 2);
}

#[test]
fn cancelling_answers_at_once_and_the_worker_goes_on() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let worker = Worker::spawn(loader(dir.path().to_path_buf(), Arc::new(AtomicUsize::new(0)))).unwrap();
    let long = worker.submit(job(100_000));
    let queued = worker.submit(job(100_000));
    until(&worker, |e| matches!(e, Event::Progress { job, .. } if *job == long));
    worker.cancel(queued);
    worker.cancel(long);
    worker.cancel(long); // twice: reported once
    let next = worker.submit(job(2));
    let events = until(&worker, |e| matches!(e, Event::Finished { job, .. } if *job == next));
    let cancelled: Vec<JobId> = events
        .iter()
        .filter_map(|e| match e {
            Event::Cancelled { job } => Some(*job),
            _ => None,
        })
        .collect();
    assert_eq!(cancelled, [queued, long]);
    let after_cancel = events.iter().position(|e| matches!(e, Event::Cancelled { job } if *job == long)).unwrap();
    assert!(
        !events[after_cancel..].iter().any(|e| matches!(e, Event::Progress { job, .. } | Event::Finished { job, .. } if *job == long || *job == queued)),
        "nothing more from cancelled jobs: {events:?}"
    );
    // Dropping the handle with a long job running stops it and joins the thread.
    worker.submit(job(100_000));
    drop(worker);
}

#[test]
fn a_failed_load_fails_the_job_with_its_message_and_the_next_job_tries_again() {
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = attempts.clone();
    let worker = Worker::spawn(Box::new(move |_: &PromptSettings, _: &mut dyn FnMut(String)| {
        counted.fetch_add(1, Ordering::SeqCst);
        Err("no AudioLDM2 model directory found".to_string())
    }))
    .unwrap();
    let a = worker.submit(job(2));
    let b = worker.submit(job(2));
    let events = until(&worker, |e| matches!(e, Event::Failed { job, .. } if *job == b));
    let failures: Vec<(JobId, &str)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { job, message } => Some((*job, message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failures, [(a, "no AudioLDM2 model directory found"), (b, "no AudioLDM2 model directory found")]);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}

/// The tiny model, its first decoder stage held until the test lets it go, and a log of
/// the decoder stages it runs (the clip length they were for, and when they started).
struct GatedPrior {
    inner: AudioLdm2,
    gate: Mutex<Option<(Sender<()>, Receiver<()>)>>,
    log: Arc<Mutex<Vec<(usize, Instant)>>>,
}

impl LatentPrior for GatedPrior {
    fn sample_rate(&self) -> u32 {
        self.inner.sample_rate()
    }
    fn latent_shape(&self, samples: usize) -> (usize, usize, usize) {
        self.inner.latent_shape(samples)
    }
    fn schedule(&self) -> &DdimSchedule {
        self.inner.schedule()
    }
    fn device(&self) -> &candle_core::Device {
        self.inner.device()
    }
    fn predict_noise(&self, z_t: &candle_core::Tensor, t: &[usize]) -> candle_core::Result<candle_core::Tensor> {
        self.inner.predict_noise(z_t, t)
    }
    fn predict_noise_differentiable(&self, z_t: &candle_core::Tensor, t: &[usize]) -> candle_core::Result<candle_core::Tensor> {
        self.inner.predict_noise_differentiable(z_t, t)
    }
    fn decode(&self, z: &candle_core::Tensor, samples: usize) -> candle_core::Result<candle_core::Tensor> {
        self.inner.decode(z, samples)
    }
    fn decoder_stages(&self) -> &[DecoderStage] {
        self.inner.decoder_stages()
    }
    fn decode_stage(&self, index: usize, x: &candle_core::Tensor, samples: usize) -> candle_core::Result<candle_core::Tensor> {
        self.log.lock().unwrap().push((samples, Instant::now()));
        let gate = self.gate.lock().unwrap().take();
        if let Some((entered, release)) = gate {
            entered.send(()).unwrap();
            release.recv().unwrap();
        }
        self.inner.decode_stage(index, x, samples)
    }
}

/// A step on a CPU can take many seconds; Cancel must not wait for it to end. The job is
/// held inside a decoder stage, cancelled, then let go: it runs no further stage, and the
/// worker starts the next job at once.
#[test]
fn a_cancelled_job_stops_at_the_next_stage_boundary() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let (entered_tx, entered) = channel();
    let (release, release_rx) = channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let prior_log = log.clone();
    let gate = Mutex::new(Some((entered_tx, release_rx)));
    let model_dir = dir.path().to_path_buf();
    let worker = Worker::spawn(Box::new(move |p: &PromptSettings, _: &mut dyn FnMut(String)| {
        let inner = AudioLdm2::load_for_prompt(&model_dir, &LoadOptions::default(), &p.prompt, p.guidance_scale).map_err(|e| e.to_string())?;
        let gate = Mutex::new(gate.lock().unwrap().take());
        Ok(Box::new(GatedPrior { inner, gate, log: prior_log.clone() }) as _)
    }))
    .unwrap();
    let (long_len, next_len) = (12_000, 8_000);
    let long = worker.submit(job_of(long_len, 100_000));
    entered.recv_timeout(WAIT).expect("the long job reaches its first decoder stage");
    worker.cancel(long);
    let boundary = Instant::now();
    release.send(()).unwrap();
    let next = worker.submit(job_of(next_len, 1));
    let events = until(&worker, |e| matches!(e, Event::Finished { job, .. } | Event::Failed { job, .. } if *job == next));
    finished(&events, next);

    let log = log.lock().unwrap();
    let long_stages = log.iter().filter(|(samples, _)| *samples == long_len).count();
    assert_eq!(long_stages, 1, "the cancelled job ran no stage after the one it was in");
    let next_started = log.iter().find(|(samples, _)| *samples == next_len).expect("the next job ran").1;
    let latency = next_started - boundary;
    eprintln!("from the stage boundary to the next job's first decoder stage: {latency:?}");
    assert!(latency < Duration::from_secs(1), "the worker took {latency:?} after the stage boundary");
}
