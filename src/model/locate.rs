//! Finding a model directory in the diffusers layout.

use std::path::{Path, PathBuf};

use super::hub;

/// Environment variable that names a model directory; it wins over the default places.
pub const MODEL_DIR_ENV: &str = "DGG_MODEL_DIR";
/// The model the restorations were designed for, as named on the Hugging Face hub.
pub const DEFAULT_MODEL_NAME: &str = "audioldm2-music";

/// An ordered list of places where a model directory may be, and the first that holds one.
#[derive(Debug, Clone)]
pub struct ModelSearch {
    candidates: Vec<PathBuf>,
}

impl ModelSearch {
    /// Searches `candidates` in order.
    pub fn new(candidates: Vec<PathBuf>) -> Self {
        Self { candidates }
    }

    /// Where the plugin looks: the directory the user chose in the editor, `$DGG_MODEL_DIR`,
    /// the user's data directory (`~/.local/share/dgg-restore/models/audioldm2-music` on
    /// Linux), then a completed download in the Hugging Face hub cache.
    pub fn for_plugin(chosen: Option<PathBuf>) -> Self {
        Self { candidates: chosen.into_iter().chain(env_dir()).chain(user_dir()).chain(hub::cached()).collect() }
    }

    /// Where the command line looks: `--model` alone if given, else `$DGG_MODEL_DIR`,
    /// `models/audioldm2-music/` under the working directory, then the plugin's places.
    pub fn for_cli(explicit: Option<PathBuf>) -> Self {
        let local = PathBuf::from("models").join(DEFAULT_MODEL_NAME);
        let candidates = match explicit {
            Some(dir) => vec![dir],
            None => env_dir().into_iter().chain(std::iter::once(local)).chain(user_dir()).chain(hub::cached()).collect(),
        };
        Self { candidates }
    }

    /// Every place looked at, in order.
    pub fn candidates(&self) -> &[PathBuf] {
        &self.candidates
    }

    /// The first candidate that is a diffusers model directory (has `model_index.json`).
    pub fn found(&self) -> Option<&Path> {
        self.candidates.iter().map(PathBuf::as_path).find(|dir| dir.join("model_index.json").is_file())
    }

    /// One line for a status bar: where the model is, or where it was looked for.
    pub fn status_line(&self) -> String {
        match self.found() {
            Some(dir) => format!("Model found: {}", dir.display()),
            None if self.candidates.is_empty() => {
                format!("No model: set {MODEL_DIR_ENV} to an AudioLDM2 model directory")
            }
            None => {
                let looked: Vec<String> = self.candidates.iter().map(|p| p.display().to_string()).collect();
                format!("No model found (looked in {})", looked.join(", "))
            }
        }
    }
}

fn env_dir() -> Option<PathBuf> {
    std::env::var_os(MODEL_DIR_ENV).filter(|d| !d.is_empty()).map(PathBuf::from)
}

fn user_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|data| data.join("dgg-restore").join("models").join(DEFAULT_MODEL_NAME))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_first_directory_with_model_index() {
        let root = tempfile::tempdir().unwrap();
        let empty = root.path().join("empty");
        let model = root.path().join("model");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("model_index.json"), "{}").unwrap();

        let search = ModelSearch::new(vec![root.path().join("missing"), empty.clone(), model.clone()]);
        assert_eq!(search.found(), Some(model.as_path()));
        assert!(search.status_line().contains(&model.display().to_string()));

        let none = ModelSearch::new(vec![empty.clone()]);
        assert_eq!(none.found(), None);
        assert!(none.status_line().contains(&empty.display().to_string()));
    }
}
