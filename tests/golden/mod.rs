//! Reference tensors recorded from the reference implementations (torch, torchaudio,
//! librosa, diffusers) by `tools/golden/make_golden.py`.
//!
//! Read from `$DGG_GOLDEN_DIR` if set, else `tests/fixtures/golden/`, so the same tests can
//! be pointed at a fixture set made with another seed or other tiny configs.
//!
//! `DGG_DEVICE=cuda` runs the parity tests on the GPU (`tools/gpu/check.sh`): the reference
//! tensors are moved there, the networks are built there, and the tolerances are at least
//! 1e-3 (TF32 matrix products and other kernels' rounding).

#![allow(dead_code)] // each test binary uses a different subset

use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::PathBuf;

/// The device the parity tests run on: `DGG_DEVICE` (`cpu`, the default, or `cuda`).
pub fn device() -> Device {
    static DEVICE: std::sync::OnceLock<Device> = std::sync::OnceLock::new();
    DEVICE
        .get_or_init(|| match std::env::var("DGG_DEVICE").as_deref() {
            Err(_) | Ok("cpu") => Device::Cpu,
            Ok("cuda") => Device::new_cuda(0).unwrap_or_else(|e| panic!("DGG_DEVICE=cuda: {e}")),
            Ok(other) => panic!("DGG_DEVICE={other}: use cpu or cuda"),
        })
        .clone()
}

/// The networks in f32 on [`device()`].
pub fn load_options() -> dgg_restore::model::audioldm2::LoadOptions {
    dgg_restore::model::audioldm2::LoadOptions { device: device(), dtype: DType::F32 }
}

/// Smallest tolerance a comparison on [`device()`] can hold.
fn tolerance_floor() -> f64 {
    if device().is_cpu() {
        0.0
    } else {
        1e-3
    }
}

pub struct Golden {
    pub dir: PathBuf,
    tensors: HashMap<String, Tensor>,
}

impl Golden {
    pub fn load() -> Self {
        let dir =
            std::env::var_os("DGG_GOLDEN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden"));
        let file = dir.join("golden.safetensors");
        let tensors = candle_core::safetensors::load(&file, &Device::Cpu)
            .unwrap_or_else(|e| panic!("cannot read {}: {e} (regenerate with tools/golden/make_golden.py)", file.display()));
        Self { dir, tensors }
    }

    pub fn get(&self, name: &str) -> Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("{} has no tensor '{name}'", self.dir.display()))
            .to_dtype(DType::F32)
            .and_then(|t| t.to_device(&device()))
            .unwrap()
    }

    /// A setting stored as a shape-[1] tensor.
    pub fn scalar(&self, name: &str) -> f64 {
        self.get(name).flatten_all().unwrap().to_vec1::<f32>().unwrap()[0] as f64
    }

    /// A scratch copy of the fixture directory (model directories included), to break or
    /// to write a cache into.
    pub fn copy_dir(&self) -> tempfile::TempDir {
        fn copy(from: &std::path::Path, to: &std::path::Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), target).unwrap();
                }
            }
        }
        let dir = tempfile::tempdir().unwrap();
        copy(&self.dir, dir.path());
        dir
    }

    /// A 1-D signal as a (1, samples) batch.
    pub fn wave(&self, name: &str) -> Tensor {
        self.get(name).flatten_all().unwrap().unsqueeze(0).unwrap()
    }
}

/// max |got − want| / max |want|, after checking the shapes agree.
pub fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shape mismatch");
    let got = got.to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let want = want.to_device(&Device::Cpu).unwrap().to_dtype(DType::F64).unwrap();
    let err = (&got - &want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    let scale = want.abs().unwrap().max_all().unwrap().to_scalar::<f64>().unwrap();
    err / scale.max(1e-30)
}

#[track_caller]
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor, tolerance: f64) {
    let all_finite = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().all(|v| v.is_finite());
    assert!(all_finite, "{what}: non-finite values");
    let tolerance = tolerance.max(tolerance_floor());
    let err = relative_error(got, want);
    println!("{what}: relative error {err:.3e}");
    assert!(err <= tolerance, "{what}: relative error {err:.3e} > {tolerance:.0e}");
}
