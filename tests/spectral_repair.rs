//! Spectral repair (#17): `restore --task inpaint --region START-END@LOW-HIGH` on a 48 kHz
//! stereo take of real music (the Wesnoth example) with the fixture's tiny model. Away from
//! the region's fades nothing changes, bit for bit; inside the region's time span the band
//! outside the region keeps the original's STFT, and the region's own cells are the
//! restoration's.

mod cli_tool;
mod golden;
mod wav;

use cli_tool::dgg;
use dgg_restore::audio::resample;
use dgg_restore::dsp::griffin_lim::magnitude;
use dgg_restore::dsp::stft::StftConfig;
use golden::Golden;
use std::path::Path;
use wav::{read_wav, write_wav};

const RATE: u32 = 48_000;

/// How far the magnitudes of `a` and `b` differ, relative to `a`'s, in the frames centred
/// in `time` (samples) and the bins in `band` (Hz).
fn change(a: &[f32], b: &[f32], time: std::ops::Range<usize>, band: (f64, f64)) -> f64 {
    let config = StftConfig { n_fft: 2048, hop: 512 };
    let (ma, mb) = (magnitude(a, config), magnitude(b, config));
    let bins = config.bins();
    let (mut diff, mut energy) = (0.0, 0.0);
    for f in (0..ma.len() / bins).filter(|f| time.contains(&(f * config.hop))) {
        for k in (0..bins).filter(|&k| (band.0..band.1).contains(&(k as f64 * RATE as f64 / 2048.0))) {
            diff += ((ma[f * bins + k] - mb[f * bins + k]) as f64).powi(2);
            energy += (ma[f * bins + k] as f64).powi(2);
        }
    }
    (diff / energy).sqrt()
}

#[test]
fn a_region_is_repaired_and_nothing_else_changes() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let (input_path, output_path) = (dir.path().join("in.wav"), dir.path().join("out.wav"));
    let (example, _) = dgg_restore::audio::read_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audio/example.wav")).unwrap();
    let input = resample(&example.channels, example.sample_rate, RATE).unwrap();
    write_wav(&input_path, RATE, &input);
    let o = dgg()
        .args(["restore", "--task", "inpaint", "--region", "1.0-1.3@1500-6000", "--steps", "2", "--model"])
        .arg(model.path())
        .arg(&input_path)
        .arg(&output_path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (rate, output) = read_wav(&output_path);
    assert_eq!((rate, output.len(), output[0].len()), (RATE, 2, input[0].len()));

    // The fades reach 10 ms and half a 2048-sample frame beyond the region.
    let reach = (0.99 * RATE as f64) as usize - 1_024..(1.31 * RATE as f64) as usize + 1_024;
    for (c, (x, y)) in input.iter().zip(&output).enumerate() {
        assert!(x.iter().zip(y).enumerate().all(|(n, (a, b))| reach.contains(&n) || a.to_bits() == b.to_bits()), "channel {c} changed away from the region");
        let inside = (1.05 * RATE as f64) as usize..(1.25 * RATE as f64) as usize;
        let below = change(x, y, inside.clone(), (0.0, 1_200.0));
        let above = change(x, y, inside.clone(), (6_400.0, 20_000.0));
        let region = change(x, y, inside, (1_700.0, 5_800.0));
        println!("channel {c}: relative change below the band {below:.1e}, above it {above:.1e}, in the region {region:.2}");
        assert!(below < 1e-2 && above < 1e-2, "channel {c}: the band outside the region changed: {below} {above}");
        assert!(region > 0.1, "channel {c}: the region was not repaired: {region}");
    }
}

#[test]
fn impossible_regions_are_refused_with_the_reason() {
    let g = Golden::load();
    let model = g.copy_dir();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.wav");
    write_wav(&input, RATE, &[vec![0.1; RATE as usize]]);
    for (region, says) in [
        ("0.2-0.4@1000-9000", "above the model's band limit"),
        ("0.4-0.2@100-200", "empty or reversed"),
        ("0.2-0.4@3000-1000", "low < high"),
        ("0.2-5@100-200", "outside"),
        ("0.2-0.4", "START-END@LOW-HIGH"),
    ] {
        let o = dgg()
            .args(["restore", "--task", "inpaint", "--region", region, "--steps", "1", "--model"])
            .arg(model.path())
            .arg(&input)
            .arg(dir.path().join("out.wav"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && stderr.contains(says), "{region}: {stderr}");
    }
}
