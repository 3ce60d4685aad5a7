//! Conditioning computed once per prompt and stored next to the weights, so later runs load
//! only the UNet, VAE and vocoder.
//!
//! An entry is `conditioning/<hash>.safetensors` in the model directory (or, when that is
//! read-only, in the user's cache directory). It holds the tensors, the prompt key and a
//! fingerprint of the text-model files: when the text models are present a stale entry is
//! recomputed; when they have been removed, the entry is used as it is.

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::Conditioning;
use super::{TextEncoders, TEXT_COMPONENTS};
use crate::files::{write_atomic, FileError};
use crate::model::error::ModelError;

/// A prompt, and for classifier-free guidance the negative prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    pub negative: Option<String>,
}

impl Prompt {
    /// The paper's null prompt, without guidance.
    pub fn null() -> Self {
        Self { text: String::new(), negative: None }
    }

    fn key(&self) -> String {
        match &self.negative {
            Some(n) => format!("prompt={:?} negative={:?}", self.text, n),
            None => format!("prompt={:?}", self.text),
        }
    }
}

/// The UNet conditioning of a [`Prompt`].
#[derive(Debug, Clone)]
pub struct PromptConditioning {
    pub conditional: Conditioning,
    /// Present for classifier-free guidance.
    pub unconditional: Option<Conditioning>,
}

/// Whether [`ConditioningCache::get`] found the entry or ran the text models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cache,
    TextModels,
}

pub struct ConditioningCache {
    model_dir: PathBuf,
    /// Where entries are looked for, in order; new ones go to the first writable.
    locations: Vec<PathBuf>,
}

impl ConditioningCache {
    /// `conditioning/` in the model directory, then the user's cache directory.
    pub fn new(model_dir: &Path) -> Self {
        let mut locations = vec![model_dir.join("conditioning")];
        if let Some(cache) = dirs::cache_dir() {
            let id = fnv1a(model_dir.canonicalize().unwrap_or_else(|_| model_dir.to_path_buf()).to_string_lossy().as_bytes());
            locations.push(cache.join("dgg-restore").join("conditioning").join(format!("{id:016x}")));
        }
        Self { model_dir: model_dir.to_path_buf(), locations }
    }

    /// The conditioning of `prompt`: from the cache, or computed with the text models
    /// (loaded for this call only) and stored.
    pub fn get(&self, prompt: &Prompt, device: &Device) -> Result<(PromptConditioning, Source), ModelError> {
        let key = prompt.key();
        let file = format!("{:016x}.safetensors", fnv1a(key.as_bytes()));
        let fingerprint = self.fingerprint();
        let mut damaged = None;
        for path in self.locations.iter().map(|dir| dir.join(&file)) {
            match read_entry(&path, &key, fingerprint.as_deref(), device) {
                Ok(Some(entry)) => return Ok((entry, Source::Cache)),
                Ok(None) => {}
                Err(why) => damaged = damaged.or(Some((path, why))),
            }
        }
        if fingerprint.is_none() {
            return Err(match damaged {
                Some((path, why)) => ModelError::Text {
                    path,
                    message: format!("the cached conditioning for {key} {why}: delete the file, and put the text models in the model directory to compute it again (see models/README.md)"),
                },
                None => ModelError::Text {
                    path: self.model_dir.clone(),
                    message: format!(
                        "no cached conditioning for {key} and no text models to compute it: put text_encoder/, text_encoder_2/, projection_model/, language_model/, tokenizer/ and tokenizer_2/ in the model directory (see models/README.md)"
                    ),
                },
            });
        }
        let computed = compute(&self.model_dir, prompt, device)?;
        let fingerprint = fingerprint.unwrap_or_default();
        // A cache that cannot be written only costs time on the next run.
        let _ = self.locations.iter().any(|dir| write_entry(&dir.join(&file), &key, &fingerprint, &computed).is_ok());
        Ok((computed, Source::TextModels))
    }

    /// A digest of the text-model files (names, sizes, modification times, and the content
    /// of configs and tokenizers); `None` when any text component is missing.
    fn fingerprint(&self) -> Option<String> {
        let mut material = Vec::new();
        for component in TEXT_COMPONENTS {
            let dir = self.model_dir.join(component);
            let mut entries: Vec<_> = std::fs::read_dir(&dir).ok()?.filter_map(|e| e.ok()).collect();
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let meta = entry.metadata().ok()?;
                if !meta.is_file() {
                    continue;
                }
                material.extend_from_slice(format!("{component}/{}:{}", entry.file_name().to_string_lossy(), meta.len()).as_bytes());
                if entry.path().extension().is_some_and(|e| e == "json" || e == "txt" || e == "model") {
                    material.extend_from_slice(&std::fs::read(entry.path()).ok()?);
                } else if let Ok(modified) = meta.modified() {
                    let secs = modified.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
                    material.extend_from_slice(format!(":{secs}").as_bytes());
                }
            }
        }
        Some(format!("{:016x}", fnv1a(&material)))
    }
}

fn compute(model_dir: &Path, prompt: &Prompt, device: &Device) -> Result<PromptConditioning, ModelError> {
    let mut encoders = TextEncoders::load(model_dir, device)?;
    let conditional = encoders.encode(&prompt.text)?;
    let unconditional = match &prompt.negative {
        Some(negative) => {
            let t5_len = conditional.encoder_hidden_states_1.dim(1).map_err(|e| ModelError::BadConditioning(e.to_string()))?;
            Some(encoders.encode_negative(negative, t5_len)?)
        }
        None => None,
    };
    Ok(PromptConditioning { conditional, unconditional })
}

const NAMES: [&str; 3] = ["encoder_hidden_states", "encoder_hidden_states_1", "attention_mask_1"];

/// The entry at `path` for `key`: `Ok(None)` when there is none (or it belongs to other text
/// models), `Err` with the reason when the file is there but unusable.
fn read_entry(path: &Path, key: &str, fingerprint: Option<&str>, device: &Device) -> Result<Option<PromptConditioning>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let tensors = candle_core::safetensors::load(path, device).map_err(|e| format!("cannot be read ({e})"))?;
    let text = |name: &str| -> Option<String> { String::from_utf8(tensors.get(name)?.to_vec1::<u8>().ok()?).ok() };
    if text("key").as_deref() != Some(key) || fingerprint.is_some_and(|f| text("fingerprint").as_deref() != Some(f)) {
        return Ok(None);
    }
    let get = |name: String| -> Result<Tensor, String> {
        let t = tensors.get(&name).ok_or_else(|| format!("lacks `{name}`"))?;
        let finite = t.to_dtype(DType::F64).and_then(|t| t.sqr()?.sum_all()?.to_scalar::<f64>()).is_ok_and(f64::is_finite);
        finite.then(|| t.clone()).ok_or_else(|| format!("holds NaN or infinite values in `{name}`"))
    };
    let part = |prefix: &str| -> Result<Conditioning, String> {
        Ok(Conditioning {
            encoder_hidden_states: get(format!("{prefix}{}", NAMES[0]))?,
            encoder_hidden_states_1: get(format!("{prefix}{}", NAMES[1]))?,
            attention_mask_1: tensors.contains_key(&format!("{prefix}{}", NAMES[2])).then(|| get(format!("{prefix}{}", NAMES[2]))).transpose()?,
        })
    };
    let unconditional = tensors.contains_key(&format!("uncond.{}", NAMES[0])).then(|| part("uncond.")).transpose()?;
    Ok(Some(PromptConditioning { conditional: part("cond.")?, unconditional }))
}

/// Written atomically ([`write_atomic`]), so a crash never leaves a half entry.
fn write_entry(path: &Path, key: &str, fingerprint: &str, c: &PromptConditioning) -> candle_core::Result<()> {
    let mut map: HashMap<String, Tensor> = HashMap::new();
    let bytes = |s: &str| Tensor::new(s.as_bytes(), &Device::Cpu);
    map.insert("key".into(), bytes(key)?);
    map.insert("fingerprint".into(), bytes(fingerprint)?);
    let mut put = |prefix: &str, part: &Conditioning| -> candle_core::Result<()> {
        let tensors = [Some(&part.encoder_hidden_states), Some(&part.encoder_hidden_states_1), part.attention_mask_1.as_ref()];
        for (name, t) in NAMES.iter().zip(tensors) {
            if let Some(t) = t {
                map.insert(format!("{prefix}{name}"), t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?);
            }
        }
        Ok(())
    };
    put("cond.", &c.conditional)?;
    if let Some(u) = &c.unconditional {
        put("uncond.", u)?;
    }
    let dir = path.parent().expect("entries live in a directory");
    std::fs::create_dir_all(dir)?;
    let bytes = safetensors::serialize(&map, None).map_err(candle_core::Error::wrap)?;
    write_atomic(path, |out| out.write_all(&bytes).map_err(|source| FileError { path: path.to_owned(), action: "write", source }))
        .map_err(candle_core::Error::wrap)
}

/// 64-bit FNV-1a: a stable file name for a key (entries store the key itself, so a
/// collision is a miss, not a wrong answer).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}
