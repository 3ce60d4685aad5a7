//! `dgg-restore experiment` and `eval` on the fixture's tiny model: both protocols write
//! every segment's audio in the documented layout and tables that say which setup they
//! come from; our table agrees with `eval` on the written files, and a stopped or extended
//! run continues instead of starting over.

mod golden;
mod wav;

use golden::Golden;
use std::path::Path;
use std::process::{Command, Output};
use wav::{read_wav, write_wav};

fn dgg(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dgg-restore")).env_remove("DGG_MODEL_DIR").env("HF_HUB_OFFLINE", "1").args(args).output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// The mean LSD `eval` prints for a directory.
fn eval_mean(reference: &Path, restored: &Path) -> f64 {
    let o = dgg(&["eval", "--reference", reference.to_str().unwrap(), "--restored", restored.to_str().unwrap()]);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    let line = stdout.lines().find(|l| l.starts_with("mean of")).unwrap_or_else(|| panic!("no mean in: {stdout}"));
    line.split_whitespace().last().unwrap().parse().unwrap()
}

#[test]
fn experiment_writes_the_protocol_and_continues_where_it_stopped() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (clips, out) = (dir.path().join("clips"), dir.path().join("out"));
    std::fs::create_dir_all(&clips).unwrap();
    // 1.3 s of stereo tones at 44.1 kHz (two 0.6 s segments and a dropped tail) and a silent
    // file, whose segments are skipped.
    let rate = 44_100;
    let tone = |c: usize| -> Vec<f32> {
        (0..57_330)
            .map(|n| {
                let t = n as f32 / rate as f32;
                (0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() + 0.1 * (2.0 * std::f32::consts::PI * 1760.0 * t).sin()) * (1.0 - 0.2 * c as f32)
            })
            .collect()
    };
    write_wav(&clips.join("song.wav"), rate, &[tone(0), tone(1)]);
    write_wav(&clips.join("silence.wav"), 16_000, &[vec![0.0; 16_000]]);

    let run = |steps: &str| {
        dgg(&[
            "experiment",
            "--protocol",
            "ours",
            "--clips",
            clips.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--tasks",
            "inpaint,phase",
            "--methods",
            "dgg,ddim",
            "--segment",
            "0.6",
            "--steps",
            steps,
            "--model",
            model.path().to_str().unwrap(),
        ])
    };
    let o = run("2");
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("[8/8] phase · ddim · song_001: lsd_hop160"), "{stderr}");
    assert!(stdout.contains("| LSD ↓ | Inpainting | Phase retr. |"), "{stdout}");

    // The layout, at the model's rate, mono, one segment long.
    let segments = ["song_000.wav", "song_001.wav"];
    for sub in ["clean", "inpaint/degraded", "inpaint/dgg", "inpaint/ddim", "phase/degraded", "phase/dgg", "phase/ddim"] {
        let names: Vec<String> = {
            let mut v: Vec<String> = std::fs::read_dir(out.join(sub)).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        };
        assert_eq!(names, segments, "{sub}");
        for s in segments {
            let (r, ch) = read_wav(&out.join(sub).join(s));
            assert_eq!((r, ch.len(), ch[0].len()), (16_000, 1, 9_600), "{sub}/{s}");
        }
    }
    // Inpainting silenced the middle fifth of the clean segment and nothing else.
    let clean = read_wav(&out.join("clean/song_001.wav")).1.remove(0);
    let gapped = read_wav(&out.join("inpaint/degraded/song_001.wav")).1.remove(0);
    for (n, (&c, &d)) in clean.iter().zip(&gapped).enumerate() {
        let expected = if (3_840..5_760).contains(&n) { 0.0 } else { c };
        assert_eq!(d, expected, "sample {n}");
    }
    assert!(clean.iter().map(|v| v.abs()).fold(0.0, f32::max) > 0.2);

    // The table in the paper's layout, and every cell the mean that `eval` finds.
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(rows[0], ["method", "inpaint_lsd_hop160", "inpaint_lsd_hop512", "phase_lsd_hop160", "phase_lsd_hop512"]);
    assert_eq!(rows.iter().skip(1).map(|r| r[0]).collect::<Vec<_>>(), ["degraded", "dgg", "ddim"]);
    for row in &rows[1..] {
        for (c, task) in ["inpaint", "phase"].iter().enumerate() {
            let cell: f64 = row[2 * c + 1].parse().unwrap();
            let eval_py: f64 = row[2 * c + 2].parse().unwrap();
            assert!(eval_py.is_finite() && eval_py >= 0.0, "{task}/{}: {eval_py}", row[0]);
            let evaluated = eval_mean(&out.join("clean"), &out.join(task).join(row[0]));
            assert!((cell - evaluated).abs() < 1e-3, "{task}/{}: table {cell}, eval {evaluated}", row[0]);
            assert!(cell.is_finite() && cell >= 0.0);
        }
    }
    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(scores.lines().count(), 1 + 2 * 2 * 3, "{scores}");
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    assert!(md.contains("Protocol: **ours**") && md.contains("Segments: 2 of 0.6 s") && md.contains("Steps: 2; seed 0; commit `"), "{md}");
    assert!(md.contains("Its numbers come from the paper's protocol, not this one"), "{md}");
    assert!(!md.contains("Warning"), "no step warning outside the paper's protocol: {md}");

    // A lost restoration is reported by eval, and the same command redoes only that one.
    std::fs::remove_file(out.join("inpaint/ddim/song_001.wav")).unwrap();
    let o = dgg(&["eval", "--reference", out.join("clean").to_str().unwrap(), "--restored", out.join("inpaint/ddim").to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("lacks 1 of the 2 reference files: song_001.wav"), "{}", text(&o).1);
    let o = run("2");
    let (_, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert_eq!(stderr.matches("kept from an earlier run").count(), 7, "{stderr}");
    assert!(stderr.contains("[4/8] inpaint · ddim · song_001\n"), "{stderr}");
    assert_eq!(std::fs::read_to_string(out.join("results.csv")).unwrap(), csv, "same seed, same results");

    // Other settings in the same directory would mix incomparable results.
    let o = run("3");
    assert!(!o.status.success());
    assert!(text(&o).1.contains("holds a run made with other settings"), "{}", text(&o).1);
}

/// The paper's protocol: its operators on one excerpt per clip, a warning for fewer than
/// its 500 steps, both LSDs, and the paper's table beside ours.
#[test]
fn experiment_runs_the_papers_protocol_and_says_so() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (clips, out) = (dir.path().join("clips"), dir.path().join("out"));
    std::fs::create_dir_all(&clips).unwrap();
    let tone: Vec<f32> = (0..20_800).map(|n| 0.3 * (n as f32 * 0.09).sin() + 0.1 * (n as f32 * 0.71).sin()).collect();
    write_wav(&clips.join("song.wav"), 16_000, &[tone]);
    let args = |excerpt: &str| -> Vec<String> {
        let list = ["experiment", "--clips", clips.to_str().unwrap(), "--out", out.to_str().unwrap(), "--methods", "dgg,ditto", "--iterations", "2"];
        let rest = ["--segment", "0.6", "--excerpt-at", excerpt, "--steps", "2", "--model", model.path().to_str().unwrap()];
        list.iter().chain(&rest).map(|s| s.to_string()).collect()
    };
    // The official loader's excerpt at 10 s is beyond this 1.3 s clip.
    let o = dgg(&args("10").iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!o.status.success() && text(&o).1.contains("use longer clips, an earlier --excerpt-at, or --segments all"), "{}", text(&o).1);

    let o = dgg(&args("0.25").iter().map(String::as_str).collect::<Vec<_>>());
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("warning: 2 steps, fewer than the paper's 500"), "{stderr}");
    assert!(stdout.starts_with("LSD (the paper's eval.py: hop 512, zero padding)\n| LSD ↓ | Inpainting | Super-res | Dereverb | Phase retr. |"), "{stdout}");
    for task in ["inpaint", "superres", "dereverb", "phase"] {
        for row in ["degraded", "dgg", "ditto"] {
            let (rate, ch) = read_wav(&out.join(task).join(row).join("song_at0.25s.wav"));
            assert_eq!((rate, ch.len(), ch[0].len()), (16_000, 1, 9_600), "{task}/{row}");
        }
    }
    let md = std::fs::read_to_string(out.join("results.md")).unwrap();
    for expected in [
        "Protocol: **paper**, the official code's operators",
        "Segments: 1 of 0.6 s",
        "one excerpt of each clip, 0.25 s to 0.85 s",
        "DITTO: a 2-step chain with eta 1, 2 iterations.",
        "**Warning: 2 steps, fewer than the paper's 500: the numbers are not comparable to its table.**",
        "## LSD (the paper's eval.py: hop 512, zero padding) ↓",
        "## LSD (ours: hop 160, reflect padding) ↓",
        "| DGG | 0.636 / 0.290 | 0.890 / 0.434 | 1.058 / 0.444 | 0.706 / 0.467 |",
    ] {
        assert!(md.contains(expected), "no '{expected}' in:\n{md}");
    }
    assert!(md.find("hop 512, zero padding) ↓").unwrap() < md.find("hop 160, reflect padding) ↓").unwrap(), "the paper's LSD first");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(csv.starts_with("method,inpaint_lsd_hop160,inpaint_lsd_hop512,superres_lsd_hop160"), "{csv}");
    assert_eq!(csv.lines().count(), 4);
    assert!(std::fs::read_to_string(out.join("settings.json")).unwrap().contains("\"protocol\": \"paper\""));
}

#[test]
fn eval_scores_each_file_and_refuses_mismatched_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (reference, restored) = (dir.path().join("ref"), dir.path().join("res"));
    std::fs::create_dir_all(&reference).unwrap();
    std::fs::create_dir_all(&restored).unwrap();
    let tone = |gain: f32, len: usize| -> Vec<f32> { (0..len).map(|n| gain * (n as f32 * 0.07).sin()).collect() };
    write_wav(&reference.join("a.wav"), 16_000, &[tone(0.5, 16_000)]);
    write_wav(&reference.join("b.wav"), 16_000, &[tone(0.5, 16_000)]);
    write_wav(&restored.join("a.wav"), 16_000, &[tone(0.5, 16_000)]);
    write_wav(&restored.join("b.wav"), 16_000, &[tone(0.05, 16_000)]);
    write_wav(&restored.join("extra.wav"), 16_000, &[tone(0.5, 16_000)]);
    let args = ["eval", "--reference", reference.to_str().unwrap(), "--restored", restored.to_str().unwrap()];
    let o = dgg(&args);
    let (stdout, stderr) = text(&o);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("not scored, no reference of that name: extra.wav"), "{stderr}");
    let value = |prefix: &str| -> f64 { stdout.lines().find(|l| l.starts_with(prefix)).unwrap().split_whitespace().last().unwrap().parse().unwrap() };
    assert_eq!(value("a.wav"), 0.0);
    // A tenth of the amplitude is one decade: log10 differs by 1 wherever the tone is.
    assert!((value("b.wav") - 1.0).abs() < 0.05, "{stdout}");
    assert!((value("mean of 2") - value("b.wav") / 2.0).abs() < 1e-4, "{stdout}");

    write_wav(&restored.join("b.wav"), 16_000, &[tone(0.5, 12_000)]);
    let o = dgg(&args);
    assert!(!o.status.success());
    assert!(text(&o).1.contains("res/b.wav against") && text(&o).1.contains("same length"), "{}", text(&o).1);
}
