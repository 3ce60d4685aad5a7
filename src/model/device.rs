//! Choosing where the networks run and in which precision, from user-facing names.

use candle_core::{DType, Device};
use std::str::FromStr;

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
    pub fn open(self) -> Result<Device, String> {
        match self {
            Self::Cpu => Ok(Device::Cpu),
            Self::Auto if candle_core::utils::cuda_is_available() => Device::new_cuda(0).or(Ok(Device::Cpu)),
            Self::Auto => Ok(Device::Cpu),
            Self::Cuda if !candle_core::utils::cuda_is_available() => {
                Err("this build has no CUDA support: rebuild with `--features cuda` (needs the CUDA toolkit), or use --device cpu".into())
            }
            Self::Cuda => Device::new_cuda(0).map_err(|e| format!("cannot open CUDA device 0: {e}")),
        }
    }
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

    #[test]
    fn names_parse_and_bad_names_say_what_is_accepted() {
        assert_eq!("cpu".parse::<DeviceChoice>(), Ok(DeviceChoice::Cpu));
        assert!(matches!(DeviceChoice::Cpu.open(), Ok(Device::Cpu)));
        // Without a GPU, `auto` falls back to the CPU rather than failing.
        assert!(DeviceChoice::Auto.open().is_ok());
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().contains("auto, cpu or cuda"));
        assert_eq!(parse_dtype("bf16"), Ok(DType::BF16));
        assert!(parse_dtype("f64").unwrap_err().contains("f32, f16 or bf16"));
    }
}
