//! `dgg-restore restore` end to end on the fixture's tiny model: a stereo 44.1 kHz file in,
//! the same shape out with only the gap replaced; a clear error without a model; Ctrl-C
//! leaves nothing behind.

mod cli_tool;
mod golden;
mod wav;

use cli_tool::dgg;
use golden::Golden;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use wav::{read_wav, write_wav};

/// 1.5 s of stereo tones at 44.1 kHz with 0.5–0.8 s silenced.
fn gapped(path: &Path) -> Vec<Vec<f32>> {
    let rate = 44_100.0;
    let channels: Vec<Vec<f32>> = (0..2)
        .map(|c| {
            (0..66_150)
                .map(|n| {
                    let t = n as f32 / rate;
                    if (0.5..0.8).contains(&t) {
                        0.0
                    } else {
                        0.3 * (2.0 * std::f32::consts::PI * (330.0 + 5.0 * c as f32) * t).sin()
                    }
                })
                .collect()
        })
        .collect();
    write_wav(path, 44_100, &channels);
    channels
}

#[test]
fn restores_a_stereo_file_and_replaces_only_the_gap() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let original = gapped(&input);
    let o = dgg()
        .args(["restore", "--task", "inpaint", "--gap", "0.5-0.8", "--steps", "3", "--model"])
        .arg(model.path())
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("window 1/") && stderr.contains("step 3/3") && stderr.contains("ETA"), "progress lines: {stderr}");
    let (rate, restored) = read_wav(&output);
    assert_eq!((rate, restored.len(), restored[0].len()), (44_100, 2, original[0].len()));
    let gap = 22_050..35_280;
    for (c, (r, x)) in restored.iter().zip(&original).enumerate() {
        assert!(r.iter().zip(x).enumerate().all(|(n, (a, b))| gap.contains(&n) || a.to_bits() == b.to_bits()), "channel {c} changed outside the gap");
        assert!(r[gap.clone()].iter().any(|&v| v != 0.0), "channel {c}: the gap was not filled");
    }
}

#[test]
fn without_a_model_the_error_says_how_to_get_one() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    gapped(&input);
    let o = dgg()
        .current_dir(dir.path())
        .env("HF_HOME", dir.path().join("hf"))
        .env("XDG_DATA_HOME", dir.path().join("data"))
        .args(["restore", "--task", "inpaint", "--gap", "0.5-0.8"])
        .arg(&input)
        .arg(dir.path().join("out.wav"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    for needle in ["models/audioldm2-music", "HF_HUB_OFFLINE is set", "huggingface-cli download cvssp/audioldm2-music", "CC-BY-NC-SA 4.0", "--model DIR"] {
        assert!(stderr.contains(needle), "missing '{needle}' in: {stderr}");
    }
    assert!(!dir.path().join("out.wav").exists());
}

/// More steps than the model's schedule has timesteps is an error, not a silent clamp.
#[test]
fn steps_beyond_the_schedule_are_refused() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    gapped(&input);
    let o = dgg()
        .args(["restore", "--task", "inpaint", "--gap", "0.5-0.8", "--steps", "100000", "--model"])
        .arg(model.path())
        .arg(&input)
        .arg(&output)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("--steps 100000: use 1 to"), "{stderr}");
    assert!(!output.exists());
}

/// SIGINT and SIGTERM during sampling: the run stops at the next stage, writes nothing,
/// and exits as a shell reports the signal (128 + its number).
#[test]
fn a_signal_stops_cleanly_and_writes_nothing() {
    let g = Golden::load();
    let model = g.copy_dir();
    for (signal, code) in [("INT", 130), ("TERM", 143)] {
        let dir = tempfile::tempdir().unwrap();
        let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
        gapped(&input);
        let mut child = dgg()
            .args(["restore", "--task", "phase", "--steps", "1000", "--model"])
            .arg(model.path())
            .arg(&input)
            .arg(&output)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // Wait until sampling has started, then send the signal.
        let mut log = String::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            log += &line;
            log.push('\n');
            if line.contains("step ") {
                break;
            }
        }
        let kill = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap();
        assert!(kill.success());
        for line in lines {
            log += &line.unwrap();
            log.push('\n');
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "SIG{signal}: {log}");
        assert!(log.contains("stopped by a signal: nothing was written"), "{log}");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("in.wav")], "files left behind");
    }
}

#[test]
fn super_resolution_detects_the_cutoff_when_none_is_given() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (clean, degraded, output) = (dir.path().join("clean.wav"), dir.path().join("lp.wav"), dir.path().join("out.wav"));
    // 1 s of broadband noise at 32 kHz, low-passed at 3 kHz by `degrade`.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let noise: Vec<f32> = (0..32_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    write_wav(&clean, 32_000, &[noise]);
    let o = dgg().args(["degrade", "--task", "superres", "--cutoff", "3000"]).arg(&clean).arg(&degraded).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = dgg().args(["restore", "--task", "superres", "--steps", "1", "--model"]).arg(model.path()).arg(&degraded).arg(&output).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let hz: f64 = stderr
        .split("detected the cutoff at ")
        .nth(1)
        .and_then(|rest| rest.split(" Hz").next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no detected cutoff in: {stderr}"));
    assert!((hz - 3_000.0).abs() < 150.0, "detected {hz} Hz");
    assert!(output.is_file());
}

/// `--preview` renders the same job in at most 25 steps, and says so.
#[test]
fn a_preview_is_the_same_restoration_in_fewer_steps() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    gapped(&input);
    let restore = |extra: &[&str], out: &str| {
        let o = dgg()
            .args(["restore", "--task", "inpaint", "--gap", "0.5-0.8", "--model"])
            .arg(model.path())
            .args(extra)
            .arg(&input)
            .arg(dir.path().join(out))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (String::from_utf8_lossy(&o.stderr).to_string(), read_wav(&dir.path().join(out)).1)
    };
    let (said, preview) = restore(&["--steps", "60", "--preview"], "preview.wav");
    assert!(said.contains("preview: 25 of 60 steps"), "{said}");
    let (_, short) = restore(&["--steps", "25"], "short.wav");
    assert_eq!(preview, short);
}
