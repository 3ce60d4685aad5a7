//! What `restore` and `experiment` share: finding and loading the prior, and the sampler
//! settings of a method.

use anyhow::{anyhow, bail, Result};
use candle_core::{DType, Device};
use clap::Args;
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::model::device::{parse_dtype, DeviceChoice};
use dgg_restore::model::error::ModelError;
use dgg_restore::model::hub::{self, HubError, HUB_REPO, LICENCE};
use dgg_restore::model::ModelSearch;
use dgg_restore::restore::guidance::ditto::DittoSettings;
use dgg_restore::restore::guidance::{Method, MethodKind};
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::sampler::SamplerSettings;
use std::path::PathBuf;

use crate::progress::DownloadReporter;

#[derive(Args)]
pub struct PriorArgs {
    /// Text prompt for the prior (the paper uses none).
    #[arg(long, default_value = "")]
    pub prompt: String,
    /// Classifier-free guidance scale of the prompt (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub guidance_scale: f64,
    #[arg(long, default_value = "auto", value_parser = |s: &str| s.parse::<DeviceChoice>())]
    device: DeviceChoice,
    /// f32, f16 or bf16 (CUDA only) for the UNet and vocoder.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    dtype: DType,
    /// The AudioLDM2 model directory (diffusers layout). Otherwise $DGG_MODEL_DIR, then
    /// models/audioldm2-music/, the plugin's model directory, the Hugging Face hub cache,
    /// and last a download from the hub (unless HF_HUB_OFFLINE=1).
    #[arg(long)]
    model: Option<PathBuf>,
}

/// Where the model was looked for, why the hub did not help, and how to put it in place.
fn missing_model(search: &ModelSearch, hub_failure: Option<HubError>) -> anyhow::Error {
    let looked: Vec<String> = search.candidates().iter().map(|p| format!("  {}", p.display())).collect();
    let hub = hub_failure.map(|e| format!("{e}\n")).unwrap_or_default();
    anyhow!(
        "no AudioLDM2 model directory found; looked in:\n{}\n{hub}\
         Download {HUB_REPO} (weights licensed CC-BY-NC-SA 4.0, non-commercial) on a machine with internet:\n  \
         huggingface-cli download {HUB_REPO} --local-dir models/audioldm2-music\n\
         then copy it here and pass --model DIR or set DGG_MODEL_DIR (see models/README.md)",
        looked.join("\n")
    )
}

impl PriorArgs {
    /// Finds the model, loads it on the chosen device and conditions it on the prompt.
    pub fn load(&self) -> Result<AudioLdm2> {
        // Far above the 1–10 that prompts use, the guided noise prediction overflows.
        if !(1.0..=1000.0).contains(&self.guidance_scale) {
            bail!("--guidance-scale {:?}: use a value from 1 (off) to 1000", self.guidance_scale);
        }
        let search = ModelSearch::for_cli(self.model.clone());
        let dir = match search.found() {
            Some(dir) => dir.to_path_buf(),
            None if self.model.is_some() => return Err(missing_model(&search, None)),
            None => {
                eprintln!("no local model: fetching {HUB_REPO} from the Hugging Face hub into {}\n{LICENCE}", hub::cache_dir().display());
                hub::download(DownloadReporter::new).map_err(|e| missing_model(&search, Some(e)))?
            }
        };
        let load = |device: &Device| {
            eprintln!("loading {} on {}", dir.display(), if device.is_cuda() { "CUDA" } else { "the CPU" });
            let options = LoadOptions { device: device.clone(), dtype: self.dtype };
            AudioLdm2::load_for_prompt(&dir, &options, &self.prompt, self.guidance_scale)
        };
        self.device.load(&mut |notice| eprintln!("{notice}"), load).map_err(|e| match e {
            // The option, not the model, is the culprit.
            e @ ModelError::PrecisionOnCpu(_) => anyhow!(e).context(format!("--dtype {}", self.dtype.as_str())),
            e => e.into(),
        })
    }
}

/// How long and from which seed to sample; `restore` and `experiment` share these.
#[derive(Args)]
pub struct SamplingArgs {
    /// Sampling steps (DITTO: steps of its chain). Default: 500 (the paper) on CUDA,
    /// 100 on the CPU, where a guided step of a 5 s window takes tens of seconds; DITTO 20.
    #[arg(long)]
    pub steps: Option<usize>,
    /// DITTO: optimisation iterations.
    #[arg(long, default_value_t = 100)]
    pub iterations: usize,
    /// Seed of the sampler: the same seed gives the same result on the same device.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The sampler for `kind` at `strength` (the paper's if `None`) on `prior`.
    pub fn settings(&self, kind: MethodKind, strength: Option<f64>, prior: &impl LatentPrior) -> Result<SamplerSettings> {
        let on_gpu = prior.device().is_cuda();
        let most = prior.schedule().num_train_timesteps();
        if let Some(steps) = self.steps.filter(|s| !(1..=most).contains(s)) {
            bail!("--steps {steps}: use 1 to {most} (the model was trained with {most} timesteps)");
        }
        let method = match kind.with_strength(strength) {
            Method::Ditto(d) => Method::Ditto(DittoSettings { chain_steps: self.steps.unwrap_or(d.chain_steps), iterations: self.iterations, ..d }),
            other => other,
        };
        Ok(SamplerSettings::new(method, self.steps.unwrap_or(if on_gpu { 500 } else { 100 }), self.seed))
    }
}
