//! Weights of one model component (`unet/`, `vae/`, `vocoder/`, …) as a candle `VarBuilder`.
//!
//! Reads what the hub publishes: a single `*.safetensors`, sharded safetensors with an
//! `*.safetensors.index.json`, or a PyTorch `*.bin` where that is all there is. Every
//! failure names the file and, where there is one, the tensor: a truncated file, a missing
//! tensor, a shape the config does not expect, or an integer tensor where weights belong.

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: no weights found (expected model.safetensors, diffusion_pytorch_model.safetensors, a sharded *.safetensors.index.json, or pytorch_model.bin); see models/README.md", .0.display())]
    NoWeights(PathBuf),
    #[error("{}: cannot read the weights: {message}; the file is damaged or incomplete, download it again", .path.display())]
    Unreadable { path: PathBuf, message: String },
    #[error("{}: bad shard index: {message}", .path.display())]
    BadIndex { path: PathBuf, message: String },
    /// A `.bin` in PyTorch's legacy format (a bare pickle, before 1.6's zip files).
    #[error("{}: a PyTorch file in the legacy format (before PyTorch 1.6), which is not read: convert it to safetensors, or save it again with a recent torch.save", .0.display())]
    LegacyPytorch(PathBuf),
}

/// Whether `path` is a legacy PyTorch file: a bare pickle (first opcode PROTO, 0x80) where
/// PyTorch 1.6 and later write a zip archive ("PK\x03\x04").
fn is_legacy_pytorch(path: &Path) -> bool {
    let mut head = [0u8; 2];
    std::fs::File::open(path).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok() && head[0] == 0x80
}

/// File names diffusers and transformers use, in the order we prefer them.
pub(crate) const SINGLE_FILES: [&str; 4] = ["diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin", "pytorch_model.bin"];
pub(crate) const INDEX_FILES: [&str; 2] = ["diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json"];

/// The weight files found in a component directory.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightFiles {
    Safetensors(Vec<PathBuf>),
    Pytorch(PathBuf),
}

impl WeightFiles {
    /// Look in `dir` for the component's weights.
    pub fn find(dir: &Path) -> Result<Self, LoadError> {
        for index in INDEX_FILES {
            let path = dir.join(index);
            if path.is_file() {
                return Ok(WeightFiles::Safetensors(shards(&path)?));
            }
        }
        for name in SINGLE_FILES {
            let path = dir.join(name);
            if path.is_file() {
                return Ok(if name.ends_with(".bin") { WeightFiles::Pytorch(path) } else { WeightFiles::Safetensors(vec![path]) });
            }
        }
        Err(LoadError::NoWeights(dir.to_path_buf()))
    }

    /// The files, as an error names them: the first, and how many shards follow it.
    pub fn describe(&self) -> String {
        match self {
            WeightFiles::Safetensors(files) if files.len() > 1 => format!("{} and {} more shards", files[0].display(), files.len() - 1),
            WeightFiles::Safetensors(files) => files.first().map(|f| f.display().to_string()).unwrap_or_default(),
            WeightFiles::Pytorch(file) => file.display().to_string(),
        }
    }

    /// A `VarBuilder` over these files that converts to `dtype` on `device`.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> Result<VarBuilder<'static>, LoadError> {
        let backend = CheckedBackend::open(self)?;
        Ok(VarBuilder::from_backend(Box::new(backend), dtype, device.clone()))
    }
}

/// The distinct shard files named by a sharded checkpoint's index, in first-use order.
pub(crate) fn shards(index: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let bad = |message: String| LoadError::BadIndex { path: index.to_path_buf(), message };
    let text = crate::files::read_text(index, "JSON index", crate::files::MAX_JSON_BYTES).map_err(|e| bad(e.source.to_string()))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| bad("no `weight_map` object".into()))?;
    let mut files: Vec<PathBuf> = Vec::new();
    for file in map.values() {
        let name = file.as_str().ok_or_else(|| bad("a `weight_map` entry is not a file name".into()))?;
        // Shards sit beside their index; a path elsewhere is a damaged or hostile index.
        if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
            return Err(bad(format!("`weight_map` names `{name}`, which is not a file in the index's folder")));
        }
        let path = index.with_file_name(name);
        if !files.contains(&path) {
            files.push(path);
        }
    }
    Ok(files)
}

enum Store {
    /// One memory map per file, and which file holds each tensor.
    Safetensors {
        files: Vec<(PathBuf, MmapedSafetensors)>,
        routing: HashMap<String, usize>,
    },
    Pytorch {
        path: PathBuf,
        tensors: candle_core::pickle::PthTensors,
    },
}

/// A `VarBuilder` backend whose errors say which file and which tensor.
struct CheckedBackend {
    store: Store,
}

impl CheckedBackend {
    fn open(files: &WeightFiles) -> Result<Self, LoadError> {
        let unreadable = |path: &Path, e: candle_core::Error| LoadError::Unreadable { path: path.to_path_buf(), message: e.to_string() };
        let store = match files {
            WeightFiles::Safetensors(paths) => {
                let mut opened = Vec::new();
                let mut routing = HashMap::new();
                for (i, path) in paths.iter().enumerate() {
                    // SAFETY: the map is read-only; we own no writer of these files, and a
                    // weights file changed underneath a running process is outside our contract.
                    let st = unsafe { MmapedSafetensors::new(path) }.map_err(|e| unreadable(path, e))?;
                    for (name, _) in st.tensors() {
                        routing.insert(name, i);
                    }
                    opened.push((path.clone(), st));
                }
                Store::Safetensors { files: opened, routing }
            }
            WeightFiles::Pytorch(path) => {
                if is_legacy_pytorch(path) {
                    return Err(LoadError::LegacyPytorch(path.clone()));
                }
                let tensors = candle_core::pickle::PthTensors::new(path, None).map_err(|e| unreadable(path, e))?;
                Store::Pytorch { path: path.clone(), tensors }
            }
        };
        Ok(Self { store })
    }

    /// The file a tensor lives in, or the file(s) it was looked for in.
    fn where_(&self, name: &str) -> String {
        match &self.store {
            Store::Safetensors { files, routing } => match routing.get(name) {
                Some(&i) => files[i].0.display().to_string(),
                None => files.iter().map(|(p, _)| p.display().to_string()).collect::<Vec<_>>().join(", "),
            },
            Store::Pytorch { path, .. } => path.display().to_string(),
        }
    }

    /// Stored dtype and shape, if the tensor exists.
    fn describe(&self, name: &str) -> Option<(DType, Shape)> {
        match &self.store {
            Store::Safetensors { files, routing } => {
                let view = files[*routing.get(name)?].1.get(name).ok()?;
                let dtype = DType::try_from(view.dtype()).ok()?;
                Some((dtype, Shape::from(view.shape().to_vec())))
            }
            Store::Pytorch { tensors, .. } => {
                let info = tensors.tensor_infos().get(name)?;
                Some((info.dtype, info.layout.shape().clone()))
            }
        }
    }

    fn load(&self, name: &str, device: &Device) -> candle_core::Result<Tensor> {
        let result = match &self.store {
            Store::Safetensors { files, routing } => match routing.get(name) {
                Some(&i) => files[i].1.load(name, device),
                None => Err(candle_core::Error::Msg("missing".into())),
            },
            Store::Pytorch { tensors, .. } => {
                tensors.get(name).and_then(|t| t.ok_or_else(|| candle_core::Error::Msg("missing".into()))).and_then(|t| t.to_device(device))
            }
        };
        result.map_err(|e| candle_core::Error::Msg(format!("{}: tensor `{name}` cannot be read: {e}", self.where_(name))))
    }

    fn checked(&self, name: &str, expected: Option<&Shape>) -> candle_core::Result<()> {
        let Some((dtype, shape)) = self.describe(name) else {
            candle_core::bail!("{}: missing tensor `{name}`: these weights do not match the model's config.json", self.where_(name));
        };
        if !dtype.is_float() {
            candle_core::bail!("{}: tensor `{name}` is stored as {dtype:?}, weights must be floating point", self.where_(name));
        }
        if let Some(expected) = expected.filter(|e| **e != shape) {
            candle_core::bail!("{}: tensor `{name}` has shape {:?} but the config needs {:?}", self.where_(name), shape.dims(), expected.dims());
        }
        Ok(())
    }
}

impl SimpleBackend for CheckedBackend {
    fn get(&self, s: Shape, name: &str, _: candle_nn::Init, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.checked(name, Some(&s))?;
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        self.checked(name, None)?;
        self.load(name, dev)?.to_dtype(dtype)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.describe(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(path: &Path, tensors: &[(&str, Tensor)]) {
        let map: HashMap<String, Tensor> = tensors.iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
        candle_core::safetensors::save(&map, path).unwrap();
    }

    fn weights() -> Vec<(&'static str, Tensor)> {
        vec![
            ("conv.weight", Tensor::ones((4, 2, 3), DType::F32, &Device::Cpu).unwrap()),
            ("conv.bias", Tensor::zeros(4, DType::F32, &Device::Cpu).unwrap()),
            ("steps", Tensor::zeros(1, DType::I64, &Device::Cpu).unwrap()),
        ]
    }

    #[test]
    fn loads_and_converts_dtype() {
        let dir = tempfile::tempdir().unwrap();
        save(&dir.path().join("model.safetensors"), &weights());
        let vb = WeightFiles::find(dir.path()).unwrap().var_builder(DType::F16, &Device::Cpu).unwrap();
        let w = vb.pp("conv").get((4, 2, 3), "weight").unwrap();
        assert_eq!(w.dtype(), DType::F16);
    }

    #[test]
    fn errors_name_the_file_and_the_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("diffusion_pytorch_model.safetensors");
        save(&file, &weights());
        let vb = WeightFiles::find(dir.path()).unwrap().var_builder(DType::F32, &Device::Cpu).unwrap();
        let file = file.display().to_string();

        let missing = vb.get(3, "conv.gamma").unwrap_err().to_string();
        assert!(missing.contains(&file) && missing.contains("missing tensor `conv.gamma`"), "{missing}");
        let shape = vb.get((4, 2, 5), "conv.weight").unwrap_err().to_string();
        assert!(shape.contains(&file) && shape.contains("`conv.weight`") && shape.contains("[4, 2, 3]") && shape.contains("[4, 2, 5]"), "{shape}");
        let dtype = vb.get(1, "steps").unwrap_err().to_string();
        assert!(dtype.contains("`steps`") && dtype.contains("floating point"), "{dtype}");
    }

    #[test]
    fn a_truncated_file_is_reported_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("model.safetensors");
        save(&file, &weights());
        let bytes = std::fs::read(&file).unwrap();
        std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
        let err = WeightFiles::find(dir.path()).unwrap().var_builder(DType::F32, &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("damaged or incomplete"), "{err}");
    }

    /// A legacy (pre-1.6) torch.save file is named for what it is, not called damaged.
    #[test]
    fn a_legacy_pytorch_file_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pytorch_model.bin");
        // A protocol-2 pickle of PyTorch's legacy magic number, as torch.save wrote before 1.6.
        std::fs::write(&file, b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.").unwrap();
        let err = WeightFiles::find(dir.path()).unwrap().var_builder(DType::F32, &Device::Cpu).err().unwrap().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("legacy format") && !err.contains("damaged"), "{err}");
    }

    #[test]
    fn sharded_checkpoints_route_tensors_to_their_shard() {
        let dir = tempfile::tempdir().unwrap();
        let w = weights();
        save(&dir.path().join("model-00001-of-00002.safetensors"), &w[..1]);
        save(&dir.path().join("model-00002-of-00002.safetensors"), &w[1..2]);
        std::fs::write(
            dir.path().join("model.safetensors.index.json"),
            r#"{"metadata": {}, "weight_map": {"conv.weight": "model-00001-of-00002.safetensors", "conv.bias": "model-00002-of-00002.safetensors"}}"#,
        )
        .unwrap();
        let files = WeightFiles::find(dir.path()).unwrap();
        assert!(matches!(&files, WeightFiles::Safetensors(v) if v.len() == 2));
        let vb = files.var_builder(DType::F32, &Device::Cpu).unwrap();
        assert_eq!(vb.get(4, "conv.bias").unwrap().dims(), &[4]);
        let err = vb.get((4, 2, 2), "conv.weight").unwrap_err().to_string();
        assert!(err.contains("model-00001-of-00002.safetensors"), "{err}");
    }

    #[test]
    fn an_index_naming_a_file_elsewhere_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("model.safetensors.index.json");
        for name in ["/etc/hostname", "../model.safetensors", "sub/model.safetensors"] {
            std::fs::write(&index, format!(r#"{{"weight_map": {{"conv.weight": "{name}"}}}}"#)).unwrap();
            let err = WeightFiles::find(dir.path()).expect_err(name).to_string();
            assert!(err.contains("model.safetensors.index.json") && err.contains(name), "{err}");
        }
    }

    #[test]
    fn an_empty_directory_says_where_weights_go() {
        let dir = tempfile::tempdir().unwrap();
        let err = WeightFiles::find(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no weights found") && err.contains("models/README.md"), "{err}");
    }
}
