//! A file too long to be held whole (more samples than `read_wav` takes) goes through
//! `degrade`, `restore --steps 1` and `lsd` in bounded memory, and only its gap changes.
//! The only test in its binary: the peak memory of this process's children is its own.

mod golden;

use golden::Golden;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Output};

const RATE: u32 = 8_000;
/// Just over `MAX_CLIP_SAMPLES` (2^26): 2.3 hours of mono at 8 kHz, 128 MiB of 16-bit.
const FRAMES: u32 = (1 << 26) + RATE;

fn dgg(args: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_dgg-restore")).env("HF_HUB_OFFLINE", "1").args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A 16-bit mono WAV of two tones, written block by block.
fn write_long(path: &Path) {
    let mut f = BufWriter::new(std::fs::File::create(path).unwrap());
    let data = 2 * FRAMES;
    f.write_all(b"RIFF").unwrap();
    f.write_all(&(36 + data).to_le_bytes()).unwrap();
    f.write_all(b"WAVEfmt ").unwrap();
    for v in [16u32, 1 | 1 << 16, RATE, 2 * RATE, 2 | 16 << 16] {
        f.write_all(&v.to_le_bytes()).unwrap();
    }
    f.write_all(b"data").unwrap();
    f.write_all(&data.to_le_bytes()).unwrap();
    for n in 0..FRAMES {
        let t = f64::from(n) / f64::from(RATE);
        let v = 0.3 * (2.0 * std::f64::consts::PI * 440.0 * t).sin() + 0.1 * (2.0 * std::f64::consts::PI * 1234.5 * t).sin();
        f.write_all(&((v * 32767.0) as i16).to_le_bytes()).unwrap();
    }
}

/// The samples of a 16-bit mono WAV written as above, from frame `from`, `n` of them.
fn samples(path: &Path, from: u64, n: usize) -> Vec<i16> {
    let mut f = std::fs::File::open(path).unwrap();
    f.seek(SeekFrom::Start(44 + 2 * from)).unwrap();
    let mut b = vec![0u8; 2 * n];
    f.read_exact(&mut b).unwrap();
    b.chunks(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect()
}

/// The largest peak resident memory of the children waited for so far, in bytes.
#[cfg(unix)]
fn children_peak_bytes() -> u64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    usage.ru_maxrss as u64 * 1024
}

#[test]
fn a_file_longer_than_memory_takes_streams_through_every_subcommand() {
    // A copy: the run writes its conditioning cache into the model folder.
    let model_dir = Golden::load().copy_dir();
    let model = model_dir.path().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let (clean, gapped, restored) = (dir.path().join("clean.wav"), dir.path().join("gapped.wav"), dir.path().join("restored.wav"));
    write_long(&clean);
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    // A gap 1 h into the file.
    dgg(&["degrade", "--task", "inpaint", "--gap", "3600-3601", &s(&clean), &s(&gapped)]);
    dgg(&["restore", "--task", "inpaint", "--gap", "3600-3601", "--steps", "1", "--model", &s(&model), &s(&gapped), &s(&restored)]);
    let lsd = dgg(&["lsd", &s(&clean), &s(&restored)]);
    assert!(String::from_utf8_lossy(&lsd.stdout).starts_with("LSD: "));

    let gap = 3600 * u64::from(RATE);
    let around = |p: &Path| [samples(p, gap - 20_000, 20_000), samples(p, gap + u64::from(RATE), 20_000)];
    assert!(samples(&gapped, gap, RATE as usize).iter().all(|&v| v == 0), "degrade silences the gap");
    assert_eq!(around(&gapped), around(&clean), "degrade keeps what is around the gap");
    assert_eq!(around(&restored), around(&clean), "restore keeps what is around the gap");
    assert!(samples(&restored, gap + 100, 7_000).iter().any(|&v| v != 0), "restore fills the gap");
    assert_eq!(std::fs::metadata(&restored).unwrap().len(), 44 + 2 * u64::from(FRAMES));
    // Holding the file would take 4 bytes a sample (256 MiB) before any copy.
    #[cfg(unix)]
    {
        let peak = children_peak_bytes();
        assert!(peak < 160 << 20, "peak resident memory of a subcommand: {} MiB", peak >> 20);
    }
}
