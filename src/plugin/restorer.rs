//! Restoring the captured clip in the background: the plugin's side of the engine's
//! [`Worker`].
//!
//! One [`Restorer`] per plugin instance, shared (`Arc`) by the editor (Restore, Cancel, the
//! status line) and the instance's housekeeping thread (the *Restore* host parameter). That
//! thread also [pumps](Restorer::pump) what the worker reports, so a finished restoration
//! is filed with the clips (saved with the project) and sent to the audio thread's deck
//! whether the editor is open or not — and while an offline bounce waits for it. A result
//! for a clip that was replaced meanwhile is discarded.
//!
//! The restorer alone writes the clips' `restoring` flag, which an offline bounce waits on:
//! it is true exactly while a job of the restorer's is under way.

use candle_core::Device;
use nice_plug::nice_log;
use parking_lot::Mutex;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::capture::Take;
use super::clips::Clips;
use super::settings::Unmarked;
use crate::audio::AudioClip;
use crate::engine::worker::{Event, Job, JobId, LoadPrior, PromptSettings, Worker};
use crate::engine::RestoreRequest;
use crate::model::audioldm2::{AudioLdm2, LoadOptions};
use crate::model::device::DeviceChoice;
use crate::model::ModelSearch;

/// Why a restoration could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("nothing captured yet: switch Capture on and play the region first")]
    NothingCaptured,
    #[error(transparent)]
    Unmarked(#[from] Unmarked),
    #[error("could not start the worker thread: {0}")]
    Worker(#[source] std::io::Error),
}

/// Where a restoration is, for the editor.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Idle,
    LoadingModel,
    Running { fraction: f64, step: usize, steps: usize, loss: Option<f64>, eta: Option<Duration> },
    Done,
    Cancelled,
    Failed(String),
}

impl Status {
    /// Whether a job is under way.
    pub fn is_busy(&self) -> bool {
        matches!(self, Status::LoadingModel | Status::Running { .. })
    }
}

/// The plugin's loader: the model in `chosen` (the directory the user picked), else the
/// first the plugin finds ([`ModelSearch::for_plugin`]); on CUDA when there is a GPU.
pub fn plugin_loader(chosen: impl Fn() -> Option<PathBuf> + Send + 'static) -> LoadPrior {
    Box::new(move |p: &PromptSettings, notice: &mut dyn FnMut(String)| {
        let search = ModelSearch::for_plugin(chosen());
        let dir = search.found().ok_or_else(|| search.status_line())?.to_path_buf();
        let load = |device: &Device| {
            let options = LoadOptions { device: device.clone(), ..LoadOptions::default() };
            AudioLdm2::load_for_prompt(&dir, &options, &p.prompt, p.guidance_scale)
        };
        let mut tell = |line: String| {
            nice_log!("{line}");
            notice(line);
        };
        let prior = DeviceChoice::Auto.load(&mut tell, load).map_err(|e| e.to_string())?;
        Ok(Box::new(prior) as _)
    })
}

/// The original the restorations are of, and where they are.
struct Shared {
    clips: Arc<Clips>,
    state: Mutex<State>,
}

struct State {
    /// The running job and the original it restores.
    job: Option<(JobId, Arc<Take>)>,
    status: Status,
    /// What loading the model had to say (it runs on the CPU, and why), while it is loaded.
    notice: Option<String>,
    /// Whether the last job started is a preview.
    preview: bool,
}

pub struct Restorer {
    shared: Shared,
    make_loader: Box<dyn Fn() -> LoadPrior + Send + Sync>,
    /// Started with the first job.
    worker: Mutex<Option<Worker>>,
}

impl Restorer {
    /// A restorer of the original in `clips`; its worker (started with the first job) loads
    /// the prior with a loader from `make_loader`.
    pub fn new(clips: Arc<Clips>, make_loader: impl Fn() -> LoadPrior + Send + Sync + 'static) -> Self {
        let state = Mutex::new(State { job: None, status: Status::Idle, notice: None, preview: false });
        Self { shared: Shared { clips, state }, make_loader: Box::new(make_loader), worker: Mutex::new(None) }
    }

    /// Where the restoration is, with what the worker reported so far taken in.
    pub fn status(&self) -> Status {
        self.pump();
        self.shared.state.lock().status.clone()
    }

    /// What loading the model had to say, while it is loaded: that it runs on the CPU
    /// because the GPU could not be used, and why.
    pub fn notice(&self) -> Option<String> {
        self.pump();
        self.shared.state.lock().notice.clone()
    }

    pub fn is_running(&self) -> bool {
        self.shared.state.lock().job.is_some()
    }

    /// Takes in what the worker reported since the last call: progress, and a finished
    /// restoration filed with the clips. Never waits for the worker.
    pub fn pump(&self) {
        if let Some(worker) = &*self.worker.lock() {
            for event in worker.events() {
                self.shared.take_in(event);
            }
        }
    }

    /// Restores the captured clip as `request` says (a job already running is cancelled).
    /// An error is also the new status, so the editor shows it whoever asked.
    pub fn start(&self, request: Result<RestoreRequest, Unmarked>, prompt: PromptSettings) -> Result<(), StartError> {
        self.launch(request, prompt, false)
    }

    /// [`Restorer::start`] as a preview ([`RestoreRequest::preview`]): its result is filed
    /// as the restoration until the full render replaces it.
    pub fn preview(&self, request: Result<RestoreRequest, Unmarked>, prompt: PromptSettings) -> Result<(), StartError> {
        self.launch(request.map(RestoreRequest::preview), prompt, true)
    }

    /// Whether the last job started (running or done) is a preview.
    pub fn is_preview(&self) -> bool {
        self.shared.state.lock().preview
    }

    fn launch(&self, request: Result<RestoreRequest, Unmarked>, prompt: PromptSettings, preview: bool) -> Result<(), StartError> {
        let result = self.try_start(request, prompt, preview);
        if let Err(e) = &result {
            self.shared.update(|state| state.status = Status::Failed(e.to_string()));
        }
        result
    }

    fn try_start(&self, request: Result<RestoreRequest, Unmarked>, prompt: PromptSettings, preview: bool) -> Result<(), StartError> {
        let original = self.shared.clips.read().original.clone().ok_or(StartError::NothingCaptured)?;
        let request = request?;
        let mut worker = self.worker.lock();
        let worker = match &mut *worker {
            Some(w) => w,
            None => worker.insert(Worker::spawn((self.make_loader)()).map_err(StartError::Worker)?),
        };
        self.shared.update(|state| {
            if let Some((id, _)) = state.job.take() {
                worker.cancel(id);
            }
            let clip = original.clip.clone();
            let id = worker.submit(Job { clip, request, prompt });
            state.job = Some((id, original));
            state.status = Status::Running { fraction: 0.0, step: 0, steps: 0, loss: None, eta: None };
            state.preview = preview;
        });
        Ok(())
    }

    /// Cancels the running job, if any. (Either way nothing is being restored afterwards,
    /// so an offline bounce that waits for a restoration asked for stops waiting.)
    pub fn cancel(&self) {
        let worker = self.worker.lock();
        self.shared.update(|state| {
            if let (Some(w), Some((id, _))) = (&*worker, state.job.take()) {
                w.cancel(id);
                state.status = Status::Cancelled;
            }
        });
    }

    /// Frees the model's memory (it loads again with the next job).
    pub fn release_model(&self) {
        if let Some(w) = &*self.worker.lock() {
            w.release_model();
        }
    }
}

impl Shared {
    /// Changes the state; the one writer of the clips' `restoring` flag, which follows it.
    fn update(&self, change: impl FnOnce(&mut State)) {
        let mut state = self.state.lock();
        change(&mut state);
        self.clips.mail().set_restoring(state.job.is_some());
    }

    /// Takes in one event of the worker; files a finished restoration with the clips.
    fn take_in(&self, event: Event) {
        self.update(|state| {
            let current = state.job.as_ref().map(|(id, _)| *id);
            match event {
                Event::LoadingModel => {
                    state.notice = None;
                    if current.is_some() {
                        state.status = Status::LoadingModel;
                    }
                }
                Event::Notice(line) => state.notice = Some(line),
                Event::ModelReleased => state.notice = None,
                Event::Progress { job, progress, eta } if Some(job) == current => {
                    let step = progress.step;
                    state.status = Status::Running { fraction: progress.fraction(), step: step.step, steps: step.total, loss: step.loss, eta };
                }
                Event::Finished { job, clip } if Some(job) == current => {
                    let (_, original) = state.job.take().expect("current");
                    let restored = Take::new(AudioClip::new(original.clip.sample_rate, clip.channels), original.start);
                    state.status = if self.clips.file_restored(&original, restored) {
                        Status::Done
                    } else {
                        Status::Failed("the captured clip changed while it was being restored: press Restore again".into())
                    };
                }
                Event::Failed { job, message } if Some(job) == current => {
                    state.job = None;
                    state.status = Status::Failed(message);
                }
                _ => {}
            }
        });
    }
}

impl Drop for Restorer {
    /// Lets the worker go without waiting for it: it ends (freeing the model) once the job
    /// reaches its next stage boundary. Removing the plugin must not block the host for a
    /// stage of a restoration (seconds on a CPU), whichever thread drops the restorer; the
    /// worker may outlive the instance because the library is never unloaded (`-z nodelete`).
    fn drop(&mut self) {
        if let Some(worker) = self.worker.get_mut().take() {
            worker.detach();
        }
    }
}
