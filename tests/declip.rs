//! Declipping on real music (#17): the Wesnoth example driven 12 dB into a clipper at half
//! scale (`degrade --task declip --gain 12 --clip-level 0.5`), then `restore --task declip`
//! on the fixture's tiny model with the level left to detection. The detected level is
//! within 1 % of the true one; every sample that was not clipped is unchanged, bit for bit;
//! every clipped one is restored strictly beyond the level, on its own side, where the
//! original went beyond it (the tiny model's fill rarely is: the arc over each run is), and
//! the restored peaks are closer to the music before the clipper than the clipped ones.

mod cli_tool;
mod golden;

use cli_tool::{dgg, run};
use dgg_restore::audio::read_wav;
use golden::Golden;
use std::path::Path;

#[test]
fn clipped_peaks_are_restored_and_nothing_else_changes() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/example.wav");
    let (clipped, restored) = (dir.path().join("clipped.wav"), dir.path().join("restored.wav"));
    run(dgg().args(["degrade", "--task", "declip", "--gain", "12", "--clip-level", "0.5"]).arg(&example).arg(&clipped));
    let stderr = run(dgg().args(["restore", "--task", "declip", "--steps", "2", "--model"]).arg(model.path()).arg(&clipped).arg(&restored));

    let detected: f64 = stderr.split("detected the clip level at ").nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap();
    assert!((detected / 0.5 - 1.0).abs() < 0.01, "detected {detected} for 0.5");

    let ((clean, _), (input, _), (output, _)) = (read_wav(&example).unwrap(), read_wav(&clipped).unwrap(), read_wav(&restored).unwrap());
    let gain = 10f32.powf(12.0 / 20.0);
    let lsb = 1.0 / 32_768.0;
    let (mut kept, mut repaired, mut beyond) = (0, 0, 0);
    // How far the clipped and the restored samples are from the music before the clipper.
    let (mut clipped_error, mut restored_error) = (0.0f64, 0.0f64);
    for c in 0..2 {
        for n in 0..clean.num_frames() {
            let (x, y, r) = (clean.channels[c][n] * gain, input.channels[c][n], output.channels[c][n]);
            if y.abs() < 0.5 - 2.0 * lsb {
                assert_eq!(r.to_bits(), y.to_bits(), "channel {c}, sample {n}: not clipped, but changed");
                kept += 1;
            } else if x.abs() > 0.5 {
                assert!(r * x.signum() >= 0.5 - lsb, "channel {c}, sample {n}: {r} for a peak of {x} clipped at 0.5");
                repaired += 1;
                beyond += usize::from(r.abs() > 0.5);
                clipped_error += f64::from(x - y).powi(2);
                restored_error += f64::from(x - r).powi(2);
            }
        }
    }
    let gain_db = 10.0 * (clipped_error / restored_error).log10();
    println!("{kept} samples kept, {repaired} clipped ones restored, {beyond} of them beyond the level, {gain_db:.1} dB closer to the music than clipped");
    assert!(repaired > 1_000, "the gain clips the music: {repaired}");
    assert_eq!(beyond, repaired, "{beyond} of {repaired} beyond the level");
    assert!(gain_db > 0.0, "the restored peaks are further from the music than the clipped ones: {gain_db:.1} dB");
}
