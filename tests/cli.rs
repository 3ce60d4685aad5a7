//! The `dgg-restore` command line: degradations, LSD, and errors on bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn dgg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dgg-restore")).env("HF_HUB_OFFLINE", "1").args(args).output().expect("runs")
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A float32 WAV of `channels` × `len` samples at `rate`, each channel its own mix of tones.
fn write_music(path: &Path, rate: u32, channels: u16, len: usize) -> Vec<Vec<f32>> {
    let data: Vec<Vec<f32>> = (0..channels)
        .map(|c| {
            (0..len)
                .map(|n| {
                    let t = n as f32 / rate as f32;
                    [220.0, 660.0 + 40.0 * c as f32, 3000.0, 6500.0].iter().map(|f| 0.15 * (2.0 * std::f32::consts::PI * f * t).sin()).sum::<f32>()
                })
                .collect()
        })
        .collect();
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample: 32, sample_format: hound::SampleFormat::Float };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for n in 0..len {
        for ch in &data {
            w.write_sample(ch[n]).unwrap();
        }
    }
    w.finalize().unwrap();
    data
}

fn read(path: &Path) -> (u32, Vec<Vec<f32>>) {
    let mut r = hound::WavReader::open(path).unwrap();
    let spec = r.spec();
    let flat: Vec<f32> = r.samples::<f32>().map(Result::unwrap).collect();
    let ch = spec.channels as usize;
    let planar = (0..ch).map(|c| flat.iter().skip(c).step_by(ch).copied().collect()).collect();
    (spec.sample_rate, planar)
}

/// A RIFF/WAVE file with an arbitrary fmt chunk, for encodings hound will not write.
fn write_raw_wav(path: &Path, format_tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) {
    let block = channels * bits / 8;
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format_tag.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * block as u32).to_le_bytes());
    b.extend_from_slice(&block.to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    std::fs::write(path, b).unwrap();
}

#[test]
fn every_bad_input_is_a_one_line_error_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| -> PathBuf { dir.path().join(name) };

    std::fs::write(p("text.wav"), "these are not the samples you are looking for").unwrap();
    write_music(&p("full.wav"), 16_000, 1, 16_000);
    let bytes = std::fs::read(p("full.wav")).unwrap();
    std::fs::write(p("truncated.wav"), &bytes[..bytes.len() / 2]).unwrap();
    write_raw_wav(&p("empty.wav"), 1, 1, 16_000, 16, &[]);
    write_raw_wav(&p("double.wav"), 3, 1, 16_000, 64, &[0u8; 64]);
    write_raw_wav(&p("alaw.wav"), 6, 1, 8_000, 8, &[0u8; 64]);
    write_raw_wav(&p("rate.wav"), 1, 1, 1_000, 16, &[0u8; 64]);
    let mut nan = vec![0f32; 1000];
    nan[500] = f32::NAN;
    write_raw_wav(&p("nan.wav"), 3, 1, 16_000, 32, &nan.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>());

    assert!(Command::new("mkfifo").arg(p("fifo.wav")).status().unwrap().success());

    for (file, what) in [
        ("fifo.wav", "a FIFO"),
        ("missing.wav", "cannot"),
        ("text.wav", "not a WAV"),
        ("truncated.wav", "truncated"),
        ("empty.wav", "no audio"),
        ("double.wav", "unsupported"),
        ("alaw.wav", "unsupported"),
        ("rate.wav", "sample rate"),
        ("nan.wav", "non-finite"),
    ] {
        let out = p(&format!("out-{file}"));
        let o = dgg(&["degrade", "--task", "inpaint", "--gap", "0.01-0.02", arg(&p(file)), arg(&out)]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{file}: must fail");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{file}: one line, got {stderr:?}");
        assert!(stderr.contains(file), "{file}: message must name the file: {stderr}");
        assert!(stderr.contains(what), "{file}: message must say '{what}': {stderr}");
        assert!(!out.exists(), "{file}: no output may be written");
    }
}

#[test]
fn a_failed_run_leaves_an_existing_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    write_music(&input, 16_000, 1, 8_000);
    std::fs::write(&output, b"precious").unwrap();
    for gap in ["0.3-0.1", "0.2-9.0", "0.0-0.5"] {
        let o = dgg(&["degrade", "--task", "inpaint", "--gap", gap, arg(&input), arg(&output)]);
        assert!(!o.status.success(), "gap {gap} is impossible");
        assert!(String::from_utf8_lossy(&o.stderr).contains("gap"), "gap {gap}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read(&output).unwrap(), b"precious");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "no temporary files left: {leftovers:?}");
}

/// Where the output cannot be written, the command says so before any work; a FIFO or a
/// device as the output is refused, never replaced.
#[test]
fn the_output_is_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_music(&input, 16_000, 1, 16_000);
    let fifo = dir.path().join("pipe.wav");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let missing = dir.path().join("no/such/dir/out.wav");
    for (output, what) in [(missing.as_path(), "out.wav"), (fifo.as_path(), "FIFO"), (Path::new("/dev/null"), "device")] {
        // Phase retrieval with many iterations would take minutes: the check comes first.
        let started = std::time::Instant::now();
        let o = dgg(&["degrade", "--task", "phase", "--iterations", "100000", arg(&input), arg(output)]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(what), "{}: {stderr}", output.display());
        // The operating system's reason is given once, not again as the error's cause.
        assert!(stderr.matches("(os error").count() <= 1, "{stderr}");
        assert!(started.elapsed().as_secs() < 20, "{}: the check came after the work", output.display());
    }
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO is still a FIFO");
}

/// A signal outside sampling ends the command at once: no temporary file is left, an
/// existing output is untouched, and the status is 128 + the signal's number.
#[test]
fn a_signal_during_a_degrade_leaves_nothing_behind() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    write_music(&input, 16_000, 1, 32_000);
    std::fs::write(&output, b"precious").unwrap();
    // SIGKILL cannot be handled: on Linux the output is unnamed until complete.
    let kill = if cfg!(target_os = "linux") { &[("KILL", None)][..] } else { &[] };
    for &(signal, code) in [("TERM", Some(143)), ("HUP", Some(129)), ("INT", Some(130))].iter().chain(kill) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dgg-restore"))
            .args(["degrade", "--task", "phase", "--iterations", "100000", arg(&input), arg(&output)])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        assert!(Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status().unwrap().success());
        let status = child.wait().unwrap();
        let expected = match code {
            Some(code) => (Some(code), None),
            None => (None, Some(9)),
        };
        assert_eq!((status.code(), status.signal()), expected, "SIG{signal}");
        assert_eq!(std::fs::read(&output).unwrap(), b"precious");
        let mut left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        left.sort();
        assert_eq!(left, ["in.wav", "out.wav"], "SIG{signal}: files left behind");
    }
}

/// A file-size limit (a quota, `ulimit -f`) is a one-line error, and nothing is left.
#[test]
fn a_file_size_limit_is_an_error_not_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    write_music(&input, 16_000, 1, 160_000);
    let script = format!("ulimit -f 64; exec '{}' degrade --task superres --factor 2 '{}' '{}'", env!("CARGO_BIN_EXE_dgg-restore"), arg(&input), arg(&output));
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("out.wav: cannot write: File too large"), "{stderr}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "only the input is left");
}

/// Numbers outside their range are refused by name, before any work.
#[test]
fn numeric_arguments_out_of_range_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    write_music(&input, 16_000, 1, 16_000);
    let gap = ["--task", "inpaint", "--gap", "0.2-0.3"];
    let superres = ["--task", "superres"];
    for (command, task, bad) in [
        ("degrade", &gap[..], &["--noise-std=-1"][..]),
        ("degrade", &gap, &["--noise-std", "-1"]),
        ("degrade", &gap, &["--noise-std=NaN"]),
        ("restore", &gap, &["--window=inf"]),
        ("restore", &gap, &["--guidance-scale", "-1"]),
        ("restore", &gap, &["--strength=NaN"]),
        ("degrade", &superres, &["--factor", "81"]),
    ] {
        let args: Vec<&str> = [command].into_iter().chain(task.iter().copied()).chain(bad.iter().copied()).chain([arg(&input), arg(&output)]).collect();
        let o = dgg(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let name = bad[0].split('=').next().unwrap();
        assert!(!o.status.success() && stderr.contains(name) && stderr.starts_with("error: --"), "{command} {bad:?}: {stderr}");
        assert!(!output.exists());
    }
    for (args, name) in [
        (vec!["experiment", "--clips", arg(dir.path()), "--out", arg(&dir.path().join("x")), "--segments", "0"], "--segments"),
        (vec!["experiment", "--clips", arg(dir.path()), "--out", arg(&dir.path().join("x")), "--protocol", "theirs"], "--protocol"),
        (vec!["experiment", "--clips", arg(dir.path()), "--out", arg(&dir.path().join("x")), "--rt60", "0"], "--rt60 0: RT60 0 s is outside"),
        (vec!["experiment", "--clips", arg(dir.path()), "--out", arg(&dir.path().join("x")), "--excerpt-at", "2", "--segments", "all"], "--excerpt-at"),
        (vec!["restore", "--task", "inpaint", "--gap", "0.2-0.3", "--batch", "0", arg(&input), arg(&output)], "--batch"),
    ] {
        let o = dgg(&args);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(name), "{stderr}");
    }
}

/// A silent impulse response is blamed on the response file, not on the input.
#[test]
fn a_silent_impulse_response_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output, rir) = (dir.path().join("in.wav"), dir.path().join("out.wav"), dir.path().join("room.wav"));
    write_music(&input, 16_000, 1, 16_000);
    write_raw_wav(&rir, 1, 1, 16_000, 16, &[0u8; 800]);
    let o = dgg(&["degrade", "--task", "dereverb", "--rir", arg(&rir), arg(&input), arg(&output)]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.contains("room.wav") && stderr.contains("silent") && !stderr.contains("in.wav"), "{stderr}");
}

#[test]
fn inpainting_silences_exactly_the_gaps_in_every_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let clean = write_music(&input, 44_100, 2, 44_100);
    let o = dgg(&["degrade", "--task", "inpaint", "--gap", "0.25-0.5", "--gap", "0.75-0.8", arg(&input), arg(&output)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rate, got) = read(&output);
    assert_eq!(rate, 44_100);
    for (c, (g, x)) in got.iter().zip(&clean).enumerate() {
        assert_eq!(g.len(), x.len());
        for n in 0..x.len() {
            let t = n as f64 / 44_100.0;
            let in_gap = (0.25..0.5).contains(&t) || (0.75..0.8).contains(&t);
            assert_eq!(g[n], if in_gap { 0.0 } else { x[n] }, "channel {c} sample {n}");
        }
    }
}

/// Fraction of the signal's STFT energy above `hz`, over the frames clear of the clip's
/// edges (an abrupt start or end is broadband by itself).
fn energy_above(x: &[f32], rate: u32, hz: f64) -> f64 {
    use dgg_restore::dsp::griffin_lim::magnitude;
    use dgg_restore::dsp::stft::StftConfig;
    let cfg = StftConfig { n_fft: 1024, hop: 256 };
    let mag = magnitude(x, cfg);
    let bins = cfg.bins();
    let edge = 2 * cfg.n_fft / cfg.hop;
    let inner = &mag[edge * bins..mag.len() - edge * bins];
    let split = (hz / (rate as f64 / 2.0) * (bins - 1) as f64).ceil() as usize;
    let (mut high, mut total) = (0.0, 0.0);
    for (i, m) in inner.iter().enumerate() {
        let e = (*m as f64).powi(2);
        total += e;
        if i % bins >= split {
            high += e;
        }
    }
    high / total
}

#[test]
fn superres_removes_the_highs_and_keeps_the_lows() {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let clean = write_music(&input, 16_000, 1, 16_000);
    let o = dgg(&["degrade", "--task", "superres", "--factor", "2", arg(&input), arg(&output)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (_, got) = read(&output);
    assert!(energy_above(&clean[0], 16_000, 4200.0) > 0.2, "the test signal has highs");
    let high = energy_above(&got[0], 16_000, 4200.0);
    assert!(high < 1e-6, "highs removed: {high:e}");
    // Below the cutoff the signal passes: compare the 220 Hz + 660 Hz part's energy.
    let low = |x: &[f32]| 1.0 - energy_above(x, 16_000, 1000.0);
    let kept = low(&got[0]) * got[0].iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    let orig = low(&clean[0]) * clean[0].iter().map(|v| (*v as f64).powi(2)).sum::<f64>();
    assert!((kept / orig - 1.0).abs() < 0.01, "low band energy ratio {}", kept / orig);
}

#[test]
fn dereverb_degradation_is_seeded_and_phase_reconstruction_keeps_the_magnitude() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let clean = write_music(&p("in.wav"), 16_000, 1, 16_000);
    for (name, seed) in [("a.wav", "1"), ("b.wav", "1"), ("c.wav", "2")] {
        let o = dgg(&["degrade", "--task", "dereverb", "--rt60", "0.5", "--seed", seed, arg(&p("in.wav")), arg(&p(name))]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let (a, b, c) = (read(&p("a.wav")).1, read(&p("b.wav")).1, read(&p("c.wav")).1);
    assert_eq!(a, b, "same seed, same room");
    assert_ne!(a, c, "another seed, another room");
    assert_eq!(a[0].len(), clean[0].len());

    let o = dgg(&["degrade", "--task", "phase", arg(&p("in.wav")), arg(&p("phase.wav"))]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let phase = read(&p("phase.wav")).1;
    use dgg_restore::dsp::griffin_lim::magnitude;
    use dgg_restore::dsp::stft::StftConfig;
    let (m0, m1) = (magnitude(&clean[0], StftConfig::AUDIOLDM), magnitude(&phase[0], StftConfig::AUDIOLDM));
    let err: f32 = m0.iter().zip(&m1).map(|(a, b)| (a - b).powi(2)).sum::<f32>().sqrt() / m0.iter().map(|a| a * a).sum::<f32>().sqrt();
    assert!(err < 0.25, "spectral convergence {err}");
    assert_ne!(phase[0], clean[0], "the phase is rebuilt, not copied");
}

#[test]
fn lsd_is_zero_for_identical_files_and_grows_with_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    write_music(&p("in.wav"), 44_100, 2, 44_100);
    let o = dgg(&["degrade", "--task", "superres", "--cutoff", "2000", arg(&p("in.wav")), arg(&p("lp.wav"))]);
    assert!(o.status.success());
    let score = |other: &str| -> f64 {
        let o = dgg(&["lsd", arg(&p("in.wav")), arg(&p(other))]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let text = String::from_utf8(o.stdout).unwrap();
        let line = text.lines().find(|l| l.starts_with("LSD:")).expect("an LSD line");
        line["LSD:".len()..].trim().parse().unwrap()
    };
    assert_eq!(score("in.wav"), 0.0);
    assert!(score("lp.wav") > 0.5, "a 2 kHz low-pass is a large spectral distance");
}

#[test]
fn every_subcommand_has_help() {
    for sub in [&["--help"][..], &["degrade", "--help"], &["restore", "--help"], &["lsd", "--help"], &["eval", "--help"], &["experiment", "--help"]] {
        let o = dgg(sub);
        assert!(o.status.success());
        assert!(String::from_utf8_lossy(&o.stdout).contains("Usage"));
    }
}
