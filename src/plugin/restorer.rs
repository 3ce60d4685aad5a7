//! Restoring the captured clip: the plugin's side of the engine's background [`Worker`].
//!
//! The editor starts and cancels jobs and calls [`Restorer::poll`] every frame; a finished
//! restoration is filed with the clips (so it is saved with the project) and sent to the
//! audio thread's deck. A result for a clip that was replaced meanwhile is discarded.

use std::sync::Arc;
use std::time::Duration;

use super::capture::Take;
use super::clips::Clips;
use crate::audio::AudioClip;
use crate::engine::worker::{Event, Job, JobId, LoadPrior, PromptSettings, Worker};
use crate::engine::RestoreRequest;
use crate::model::audioldm2::{AudioLdm2, LoadOptions};
use crate::model::device::DeviceChoice;
use crate::model::ModelSearch;

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

/// The plugin's loader: the model the plugin finds ([`ModelSearch::for_plugin`]), on CUDA
/// when there is a GPU.
pub fn plugin_loader() -> LoadPrior {
    Box::new(|p: &PromptSettings| {
        let search = ModelSearch::for_plugin();
        let dir = search.found().ok_or_else(|| search.status_line())?.to_path_buf();
        let device = DeviceChoice::Auto.open().map_err(|e| e.to_string())?;
        let options = LoadOptions { device, ..LoadOptions::default() };
        let prior = AudioLdm2::load_for_prompt(&dir, &options, &p.prompt, p.guidance_scale).map_err(|e| e.to_string())?;
        Ok(Box::new(prior) as _)
    })
}

pub struct Restorer {
    make_loader: Box<dyn Fn() -> LoadPrior + Send>,
    worker: Option<Worker>,
    /// The running job and the original it restores.
    job: Option<(JobId, Arc<Take>)>,
    status: Status,
}

impl Restorer {
    /// A restorer whose worker (started with the first job) loads the prior with a loader
    /// from `make_loader`.
    pub fn new(make_loader: impl Fn() -> LoadPrior + Send + 'static) -> Self {
        Self { make_loader: Box::new(make_loader), worker: None, job: None, status: Status::Idle }
    }

    pub fn status(&self) -> &Status {
        &self.status
    }

    pub fn is_running(&self) -> bool {
        self.job.is_some()
    }

    /// Restores the captured clip as `request` says (a job already running is cancelled).
    pub fn start(&mut self, clips: &Clips, request: RestoreRequest, prompt: PromptSettings) -> Result<(), String> {
        let original = clips.read().original.clone().ok_or("nothing captured yet: switch Capture on and play the region first")?;
        self.cancel();
        if self.worker.is_none() {
            let worker = Worker::spawn((self.make_loader)()).map_err(|e| format!("could not start the worker thread: {e}"))?;
            self.worker = Some(worker);
        }
        let worker = self.worker.as_mut().expect("started above");
        let clip = AudioClip::new(original.sample_rate.round() as u32, original.channels.clone());
        let id = worker.submit(Job { clip, request, prompt });
        self.job = Some((id, original));
        self.status = Status::Running { fraction: 0.0, step: 0, steps: 0, loss: None, eta: None };
        Ok(())
    }

    /// Cancels the running job, if any.
    pub fn cancel(&mut self) {
        if let (Some(worker), Some((id, _))) = (&self.worker, self.job.take()) {
            worker.cancel(id);
            self.status = Status::Cancelled;
        }
    }

    /// Frees the model's memory (it loads again with the next job).
    pub fn release_model(&mut self) {
        if let Some(worker) = &self.worker {
            worker.release_model();
        }
    }

    /// Takes in what the worker reported; files a finished restoration with `clips`.
    pub fn poll(&mut self, clips: &Clips) -> &Status {
        let Some(worker) = &self.worker else { return &self.status };
        for event in worker.events() {
            let current = self.job.as_ref().map(|(id, _)| *id);
            match event {
                Event::LoadingModel if current.is_some() => self.status = Status::LoadingModel,
                Event::Progress { job, progress, eta } if Some(job) == current => {
                    self.status = Status::Running { fraction: progress.fraction(), step: progress.step.step, steps: progress.step.total, loss: progress.step.loss, eta };
                }
                Event::Finished { job, clip } if Some(job) == current => {
                    let (_, original) = self.job.take().expect("current");
                    let still_current = clips.read().original.as_ref().is_some_and(|o| Arc::ptr_eq(o, &original));
                    self.status = if still_current {
                        clips.file_restored(Take { sample_rate: original.sample_rate, start: original.start, channels: clip.channels });
                        Status::Done
                    } else {
                        Status::Failed("the captured clip changed while it was being restored: press Restore again".into())
                    };
                }
                Event::Failed { job, message } if Some(job) == current => {
                    self.job = None;
                    self.status = Status::Failed(message);
                }
                _ => {}
            }
        }
        &self.status
    }
}
