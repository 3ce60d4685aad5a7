//! Fetching the model from the Hugging Face hub: only the files the loader reads, into the
//! hub's shared cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`, where Python's
//! `huggingface_hub` keeps its downloads too). `HF_ENDPOINT` and `HF_HUB_OFFLINE` are
//! honoured as the Python tools honour them.

use hf_hub::api::sync::{ApiBuilder, ApiError, ApiRepo};
use hf_hub::{Cache, Repo, RepoType};
use std::path::{Path, PathBuf};

use super::loader::{shards, LoadError, INDEX_FILES, SINGLE_FILES};
use super::text::TEXT_COMPONENTS;

pub use hf_hub::api::Progress as DownloadProgress;

/// The published AudioLDM2 music model.
pub const HUB_REPO: &str = "cvssp/audioldm2-music";
/// Shown before every download: the weights are not ours to license.
pub const LICENCE: &str =
    "The AudioLDM2-music weights are licensed CC-BY-NC-SA 4.0 (non-commercial use only, share alike): https://huggingface.co/cvssp/audioldm2-music";

/// Component directories holding a `config.json` and weights.
const NETWORKS: [&str; 7] = ["unet", "vae", "vocoder", "text_encoder", "text_encoder_2", "projection_model", "language_model"];
/// Fetched last, so its presence in the cache means every other file is there.
const MARKER: &str = "model_index.json";

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("HF_HUB_OFFLINE is set, so the hub was not asked")]
    Offline,
    #[error("{HUB_REPO} on the hub has no {0}: it is not an AudioLDM2 model in the diffusers layout")]
    MissingFile(String),
    #[error("fetching from the hub failed: {0}")]
    Api(#[from] ApiError),
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn repo() -> Repo {
    Repo::new(HUB_REPO.to_string(), RepoType::Model)
}

/// Whether `HF_HUB_OFFLINE` forbids asking the hub.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// Where downloads go: the hub cache's directory.
pub fn cache_dir() -> PathBuf {
    Cache::from_env().path().clone()
}

/// The model's directory in the hub cache, if a download completed there.
pub fn cached() -> Option<PathBuf> {
    Cache::from_env().repo(repo()).get(MARKER).and_then(|p| p.parent().map(Path::to_path_buf))
}

/// The files of the repo `listing` the loader reads, `model_index.json` last: each
/// network's config and weights (a shard index stands for its shards; the loader's order
/// of preference picks one format), the tokenizers, the scheduler.
pub fn plan(listing: &[String]) -> Result<Vec<String>, HubError> {
    let has = |file: &str| listing.iter().any(|f| f == file);
    let require = |file: String| if has(&file) { Ok(file) } else { Err(HubError::MissingFile(file)) };
    let mut files = vec![require("scheduler/scheduler_config.json".into())?];
    for network in NETWORKS {
        files.push(require(format!("{network}/config.json"))?);
        let weights = INDEX_FILES.iter().chain(&SINGLE_FILES).map(|name| format!("{network}/{name}")).find(|f| has(f));
        files.push(weights.ok_or_else(|| HubError::MissingFile(format!("{network}/ weights")))?);
    }
    for tokenizer in TEXT_COMPONENTS.iter().filter(|c| c.starts_with("tokenizer")) {
        files.push(require(format!("{tokenizer}/tokenizer.json"))?);
        files.push(require(format!("{tokenizer}/tokenizer_config.json"))?);
    }
    files.push(require(MARKER.into())?);
    Ok(files)
}

/// Downloads what [`plan`] names (files already in the cache are kept) and returns the
/// model's directory. `progress` makes a reporter for each file downloaded.
pub fn download<P: DownloadProgress>(mut progress: impl FnMut() -> P) -> Result<PathBuf, HubError> {
    if offline() {
        return Err(HubError::Offline);
    }
    let api = ApiBuilder::from_env().with_progress(false).build()?;
    let remote = api.repo(repo());
    let listing: Vec<String> = remote.info()?.siblings.into_iter().map(|s| s.rfilename).collect();
    let mut fetch = |file: &str| -> Result<PathBuf, HubError> { fetch_one(&remote, file, &mut progress) };
    let mut model_dir = None;
    for file in plan(&listing)? {
        let path = fetch(&file)?;
        if file.ends_with(".index.json") {
            let component = file.rsplit_once('/').map_or("", |(dir, _)| dir);
            for shard in shards(&path)? {
                let name = shard.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                fetch(&format!("{component}/{name}"))?;
            }
        }
        if file == MARKER {
            model_dir = path.parent().map(Path::to_path_buf);
        }
    }
    Ok(model_dir.expect("the plan ends with the marker"))
}

fn fetch_one<P: DownloadProgress>(remote: &ApiRepo, file: &str, progress: &mut impl FnMut() -> P) -> Result<PathBuf, HubError> {
    match Cache::from_env().repo(repo()).get(file) {
        Some(path) => Ok(path),
        None => Ok(remote.download_with_progress(file, progress())?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(extra: &[&str]) -> Vec<String> {
        let mut files: Vec<String> = [
            "model_index.json",
            "scheduler/scheduler_config.json",
            "feature_extractor/preprocessor_config.json",
            "tokenizer/tokenizer.json",
            "tokenizer/tokenizer_config.json",
            "tokenizer/vocab.json",
            "tokenizer_2/tokenizer.json",
            "tokenizer_2/tokenizer_config.json",
            "tokenizer_2/spiece.model",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in NETWORKS {
            files.push(format!("{n}/config.json"));
            files.push(format!(
                "{n}/{}",
                if n.starts_with("text") || n == "language_model" || n == "vocoder" { "pytorch_model.bin" } else { "diffusion_pytorch_model.bin" }
            ));
        }
        files.extend(extra.iter().map(|s| s.to_string()));
        files
    }

    #[test]
    fn plan_takes_what_the_loader_reads_and_prefers_safetensors() {
        let files = plan(&listing(&["unet/diffusion_pytorch_model.safetensors", "vocoder/model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors"]))
            .unwrap();
        assert_eq!(files.last().map(String::as_str), Some(MARKER));
        assert!(files.contains(&"unet/diffusion_pytorch_model.safetensors".into()));
        assert!(!files.iter().any(|f| f == "unet/diffusion_pytorch_model.bin" || f.contains("fp16")));
        assert!(files.contains(&"vocoder/model.safetensors".into()));
        assert!(files.contains(&"text_encoder_2/pytorch_model.bin".into()), "only .bin published: take it");
        assert!(!files.iter().any(|f| f.starts_with("feature_extractor") || f.ends_with("vocab.json") || f.ends_with("spiece.model")));
        assert_eq!(files.len(), 1 + 2 * NETWORKS.len() + 4 + 1);
    }

    #[test]
    fn a_sharded_checkpoint_is_fetched_through_its_index() {
        let files = plan(&listing(&["text_encoder_2/model.safetensors.index.json"])).unwrap();
        assert!(files.contains(&"text_encoder_2/model.safetensors.index.json".into()));
        assert!(!files.contains(&"text_encoder_2/pytorch_model.bin".into()));
    }

    #[test]
    fn a_repo_of_another_layout_is_named_as_such() {
        let mut files = listing(&[]);
        files.retain(|f| !f.starts_with("vae/"));
        let err = plan(&files).unwrap_err();
        assert!(err.to_string().contains("no vae/config.json"), "{err}");
    }
}
