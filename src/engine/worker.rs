//! The background worker: one non-realtime thread that owns the prior, loads it when a job
//! first needs it, keeps it warm between jobs, runs restoration jobs from a queue in order
//! and reports what happens as [`Event`]s.
//!
//! Cancelling answers at once: [`Worker::cancel`] reports the job cancelled itself, and the
//! thread drops the job at the next stage boundary of its sampler step (the UNet, each
//! decoder stage forward and back, the loss), so a full-size CPU step of many seconds does
//! not hold the worker. A panic inside a job is reported as that job's failure and the
//! worker carries on.

use crossbeam::channel::{unbounded, Receiver, Sender};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{restore_clip, Progress, RestoreRequest};
use crate::audio::AudioClip;
use crate::restore::guidance::Stage;
use crate::restore::prior::LatentPrior;

/// What the prior is conditioned on: a job with another prompt loads it again.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSettings {
    pub prompt: String,
    /// Classifier-free guidance scale of the prompt (1 = off).
    pub guidance_scale: f64,
}

impl Default for PromptSettings {
    /// No prompt, as the paper restores.
    fn default() -> Self {
        Self { prompt: String::new(), guidance_scale: 1.0 }
    }
}

pub type Prior = Box<dyn LatentPrior + Send>;
/// Loads the prior for a prompt, on the worker thread; the error is shown to the user, and
/// so is each line given to the second argument (how it loaded: a GPU that could not be
/// used), as an [`Event::Notice`].
pub type LoadPrior = Box<dyn FnMut(&PromptSettings, &mut dyn FnMut(String)) -> Result<Prior, String> + Send>;

/// A restoration to run.
#[derive(Debug, Clone)]
pub struct Job {
    pub clip: AudioClip,
    pub request: RestoreRequest,
    pub prompt: PromptSettings,
}

pub type JobId = u64;

/// What the worker reports, in order.
#[derive(Debug, Clone)]
pub enum Event {
    /// Loading the prior (the first job, or one with another prompt).
    LoadingModel,
    /// A line for the user about the prior being loaded, e.g. that it runs on the CPU
    /// because the GPU could not be used.
    Notice(String),
    Progress {
        job: JobId,
        progress: Progress,
        eta: Option<Duration>,
    },
    Finished {
        job: JobId,
        clip: AudioClip,
    },
    Failed {
        job: JobId,
        message: String,
    },
    Cancelled {
        job: JobId,
    },
    /// The prior was released on request; the next job loads it again.
    ModelReleased,
}

enum Command {
    Run(JobId, Box<Job>),
    Release,
}

/// State both sides read: which jobs were cancelled, and whether the worker is closing.
#[derive(Default)]
struct Stops {
    cancelled: Mutex<HashSet<JobId>>,
    closing: AtomicBool,
}

impl Stops {
    fn stopped(&self, job: JobId) -> bool {
        self.closing.load(Ordering::Acquire) || self.cancelled.lock().contains(&job)
    }
}

/// Handle to the worker thread; dropping it cancels what runs and joins the thread
/// ([`Worker::detach`] does not wait). Every
/// method takes `&self`, so one handle can be shared by the thread that submits jobs and
/// the one that reads the events.
pub struct Worker {
    commands: Option<Sender<Command>>,
    events_out: Sender<Event>,
    events: Receiver<Event>,
    stops: Arc<Stops>,
    last_job: AtomicU64,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread. `load` is called there when a job first needs the prior.
    pub fn spawn(load: LoadPrior) -> std::io::Result<Self> {
        let (commands, queue) = unbounded();
        let (events_out, events) = unbounded();
        let stops = Arc::new(Stops::default());
        let thread = {
            let (events_out, stops) = (events_out.clone(), stops.clone());
            std::thread::Builder::new().name("dgg-restore worker".into()).spawn(move || run(load, &queue, &events_out, &stops))?
        };
        Ok(Self { commands: Some(commands), events_out, events, stops, last_job: AtomicU64::new(0), thread: Some(thread) })
    }

    /// Queues `job` behind the others; returns its id.
    pub fn submit(&self, job: Job) -> JobId {
        let id = self.last_job.fetch_add(1, Ordering::Relaxed) + 1;
        self.send(Command::Run(id, Box::new(job)));
        id
    }

    /// Cancels `job`, queued or running: reported at once, dropped at its next stage boundary.
    pub fn cancel(&self, job: JobId) {
        if self.stops.cancelled.lock().insert(job) {
            let _ = self.events_out.send(Event::Cancelled { job });
        }
    }

    /// Frees the prior's memory once the jobs queued before this are done.
    pub fn release_model(&self) {
        self.send(Command::Release);
    }

    /// What happened since the last call, oldest first.
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        self.events.try_iter()
    }

    /// Waits up to `timeout` for the next event.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.events.recv_timeout(timeout).ok()
    }

    /// Lets the thread end by itself, without waiting for it: what runs is stopped at its
    /// next stage boundary, and the thread then frees the prior and ends. For a caller that
    /// must not block (a host removing the plugin); dropping the handle instead joins.
    pub fn detach(mut self) {
        self.stops.closing.store(true, Ordering::Release);
        self.commands = None;
        self.thread = None;
    }

    fn send(&self, command: Command) {
        if let Some(commands) = &self.commands {
            // The thread only ends when this handle drops, so the channel is open.
            let _ = commands.send(command);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.stops.closing.store(true, Ordering::Release);
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(mut load: LoadPrior, queue: &Receiver<Command>, events: &Sender<Event>, stops: &Stops) {
    let mut prior: Option<(PromptSettings, Prior)> = None;
    for command in queue.iter() {
        if stops.closing.load(Ordering::Acquire) {
            break;
        }
        let (id, job) = match command {
            Command::Run(id, job) => (id, job),
            Command::Release => {
                if prior.take().is_some() {
                    let _ = events.send(Event::ModelReleased);
                }
                continue;
            }
        };
        if stops.stopped(id) {
            stops.cancelled.lock().remove(&id);
            continue;
        }
        if prior.as_ref().is_none_or(|(loaded, _)| *loaded != job.prompt) {
            prior = None; // free the old one before loading the next
            let _ = events.send(Event::LoadingModel);
            let mut notice = |line| drop(events.send(Event::Notice(line)));
            match catch_unwind(AssertUnwindSafe(|| load(&job.prompt, &mut notice))) {
                Ok(Ok(p)) => prior = Some((job.prompt.clone(), p)),
                Ok(Err(message)) => {
                    let _ = events.send(Event::Failed { job: id, message });
                    continue;
                }
                Err(_) => {
                    let _ = events.send(Event::Failed { job: id, message: "loading the model crashed (a bug: please report it)".into() });
                    continue;
                }
            }
        }
        let (_, p) = prior.as_ref().expect("loaded above");
        let started = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| {
            restore_clip(p.as_ref(), &job.clip, &job.request, &mut |progress: &Progress| {
                if stops.stopped(id) {
                    return ControlFlow::Break(());
                }
                if progress.step.stage != Stage::Step {
                    return ControlFlow::Continue(());
                }
                let f = progress.fraction();
                let eta = (f > 0.0).then(|| started.elapsed().mul_f64((1.0 - f) / f));
                let _ = events.send(Event::Progress { job: id, progress: *progress, eta });
                ControlFlow::Continue(())
            })
        }));
        if stops.stopped(id) {
            stops.cancelled.lock().remove(&id);
            continue; // reported when it was cancelled; the result, if any, is stale
        }
        let event = match result {
            Ok(Ok(clip)) => Event::Finished { job: id, clip },
            Ok(Err(e)) => Event::Failed { job: id, message: e.to_string() },
            Err(_) => Event::Failed { job: id, message: "the restoration crashed (a bug: please report it)".into() },
        };
        let _ = events.send(event);
    }
}
