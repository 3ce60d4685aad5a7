//! Choosing where the networks run and in which precision, from user-facing names.

use candle_core::{DType, Device};
use std::str::FromStr;

use super::error::ModelError;

/// `auto` (CUDA when this build has it and a GPU is there, else CPU), `cpu` or `cuda`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => Err(format!("unknown device `{other}`: use auto, cpu or cuda")),
        }
    }
}

impl DeviceChoice {
    /// The device to run on. With `auto`, a GPU that cannot be opened (no driver, busy)
    /// gives way to the CPU, and `notice` hears why in one line.
    pub fn open(self, notice: &mut dyn FnMut(String)) -> Result<Device, ModelError> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if candle_core::utils::cuda_is_available() => Ok(Device::new_cuda(0).unwrap_or_else(|e| {
                notice(format!("CUDA cannot start ({e}): running on the CPU"));
                Device::Cpu
            })),
            Self::Auto => Ok(Device::Cpu),
            Self::Cuda if !candle_core::utils::cuda_is_available() => {
                Err(ModelError::Device("this build has no CUDA support: rebuild with `--features cuda` (needs the CUDA toolkit), or use --device cpu".into()))
            }
            Self::Cuda => Device::new_cuda(0).map_err(|e| ModelError::Device(format!("cannot open CUDA device 0: {e}"))),
        }
    }

    /// `load` on the chosen device ([`DeviceChoice::open`]). With `auto`, a GPU without room
    /// for what `load` builds gives way to the CPU too, `notice` hearing why.
    pub fn load<T>(self, notice: &mut dyn FnMut(String), load: impl Fn(&Device) -> Result<T, ModelError>) -> Result<T, ModelError> {
        let device = self.open(notice)?;
        match load(&device) {
            Err(e) if self == Self::Auto && device.is_cuda() && is_out_of_memory(&e) => {
                notice(format!("the GPU has no room for the model ({e}): running on the CPU"));
                load(&Device::Cpu)
            }
            loaded => loaded,
        }
    }
}

/// Whether `error` is a device running out of memory (CUDA says "out of memory").
fn is_out_of_memory(error: &dyn std::fmt::Display) -> bool {
    error.to_string().to_ascii_lowercase().contains("out of memory")
}

/// `f32`, `f16` or `bf16`.
pub fn parse_dtype(s: &str) -> Result<DType, String> {
    match s {
        "f32" => Ok(DType::F32),
        "f16" => Ok(DType::F16),
        "bf16" => Ok(DType::BF16),
        other => Err(format!("unknown precision `{other}`: use f32, f16 or bf16")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `auto` retries on the CPU when the GPU has no room, and only then.
    #[test]
    fn auto_loads_on_the_cpu_when_the_gpu_is_full() {
        let full = |device: &Device| match device {
            Device::Cpu => Ok("cpu"),
            _ => Err(ModelError::Device("CUDA_ERROR_OUT_OF_MEMORY, out of memory".into())),
        };
        let mut notices = Vec::new();
        assert_eq!(DeviceChoice::Auto.load(&mut |n| notices.push(n), full).unwrap(), "cpu");
        assert!(is_out_of_memory(&"DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")"));
        assert!(!is_out_of_memory(&"unet/config.json: bad field"));
        let broken = |_: &Device| -> Result<(), ModelError> { Err(ModelError::Device("broken".into())) };
        assert!(DeviceChoice::Auto.load(&mut |n| notices.push(n), broken).is_err(), "other errors are not retried");
    }

    #[test]
    fn names_parse_and_bad_names_say_what_is_accepted() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        let mut notices = Vec::new();
        assert!(matches!(DeviceChoice::Cpu.open(&mut |n| notices.push(n)), Ok(Device::Cpu)));
        // Without a GPU, `auto` runs on the CPU rather than failing.
        assert!(DeviceChoice::Auto.open(&mut |n| notices.push(n)).is_ok());
        if !candle_core::utils::cuda_is_available() {
            assert!(notices.is_empty(), "a build without CUDA has nothing to say: {notices:?}");
            assert!(DeviceChoice::Cuda.open(&mut |n| notices.push(n)).unwrap_err().to_string().contains("--features cuda"));
        }
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("auto, cpu or cuda"));
        assert_eq!(parse_dtype("bf16"), Ok(DType::BF16));
        assert!(parse_dtype("f64").unwrap_err().contains("f32, f16 or bf16"));
    }
}
