//! Reading diffusers / transformers `config.json` files.
//!
//! Every component's `Config` derives `Deserialize` (unknown keys are ignored, as diffusers
//! does) and is read with [`read_config`]. Fields that diffusers writes either as one value
//! or as one value per block use [`PerBlock`].

use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: unsupported `{field}` = {value}: {why}", .path.display())]
    Unsupported { path: PathBuf, field: &'static str, value: String, why: String },
}

impl ConfigError {
    /// A field whose value we do not implement (the message names it).
    pub fn unsupported(path: &Path, field: &'static str, value: impl std::fmt::Debug, why: impl Into<String>) -> Self {
        Self::Unsupported { path: path.to_path_buf(), field, value: format!("{value:?}"), why: why.into() }
    }
}

/// serde default shared by the configs: `true`.
pub(crate) fn default_true() -> bool {
    true
}

/// serde default shared by the diffusers configs: `act_fn = "silu"`.
pub(crate) fn default_act_fn() -> String {
    "silu".into()
}

/// Parse a JSON config file into `T`; the error names the file and the offending field.
pub fn read_config<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = crate::files::read_text(path, "JSON config", crate::files::MAX_JSON_BYTES).map_err(|e| ConfigError::Io { path: e.path, source: e.source })?;
    serde_json::from_str(&text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })
}

/// One value for every block, or a list with one value per block.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    One(T),
    Each(Vec<T>),
}

impl<T: Clone + std::fmt::Debug> PerBlock<T> {
    /// The value for each of `blocks` blocks; a list of the wrong length is an error naming `field`.
    pub fn resolve(&self, blocks: usize, field: &'static str, path: &Path) -> Result<Vec<T>, ConfigError> {
        match self {
            PerBlock::One(v) => Ok(vec![v.clone(); blocks]),
            PerBlock::Each(list) if list.len() == blocks => Ok(list.clone()),
            PerBlock::Each(list) => Err(ConfigError::unsupported(path, field, list, format!("has {} entries but the model has {blocks} blocks", list.len()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Demo {
        heads: PerBlock<usize>,
    }

    #[test]
    fn number_or_list() {
        let p = Path::new("config.json");
        let one: Demo = serde_json::from_str(r#"{"heads": 8, "other": true}"#).unwrap();
        assert_eq!(one.heads.resolve(3, "heads", p).unwrap(), vec![8, 8, 8]);
        let each: Demo = serde_json::from_str(r#"{"heads": [5, 10, 20]}"#).unwrap();
        assert_eq!(each.heads.resolve(3, "heads", p).unwrap(), vec![5, 10, 20]);
        let err = each.heads.resolve(4, "heads", p).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("`heads`"), "{err}");
    }
}
