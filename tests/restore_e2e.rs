//! The whole engine on the fixture's tiny AudioLDM2 (random weights): every task with every
//! method runs, keeps the input's shape, and guidance lowers the measurement loss below
//! unguided sampling from the same seed; the splice keeps what the user still has.

mod golden;

use candle_core::{Device, Tensor};
use dgg_restore::audio::{resample, AudioClip};
use dgg_restore::dsp::griffin_lim::magnitude;
use dgg_restore::dsp::stft::StftConfig;
use dgg_restore::engine::{restore_clip, OutputMode, RestoreRequest};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::restore::guidance::ditto::DittoSettings;
use dgg_restore::restore::guidance::{Method, MethodKind};
use dgg_restore::restore::measurement::Measurement;
use dgg_restore::restore::operators::{Degradation, Gap, ImpulseResponse, Operator};
use dgg_restore::restore::prior::LatentPrior;
use dgg_restore::restore::sampler::SamplerSettings;
use golden::Golden;
use std::ops::ControlFlow;

fn prior(g: &Golden) -> (AudioLdm2, tempfile::TempDir) {
    // A scratch copy: the null prompt's conditioning cache is written into it.
    let dir = g.copy_dir();
    let prior = AudioLdm2::load_for_prompt(dir.path(), &LoadOptions::default(), "", 1.0).unwrap_or_else(|e| panic!("{e}"));
    (prior, dir)
}

/// A few seconds of tones with an envelope, at `rate`, mono or stereo.
fn music(rate: u32, seconds: f64, channels: usize) -> AudioClip {
    let n = (seconds * rate as f64) as usize;
    let tone = |f: f64, k: usize| (2.0 * std::f64::consts::PI * f * k as f64 / rate as f64).sin();
    let chans = (0..channels)
        .map(|c| {
            (0..n)
                .map(|k| {
                    let env = 0.6 + 0.4 * tone(2.0, k);
                    (env * (0.3 * tone(220.0 * (1.0 + 0.01 * c as f64), k) + 0.15 * tone(1760.0, k) + 0.05 * tone(5200.0, k))) as f32
                })
                .collect()
        })
        .collect();
    AudioClip::new(rate, chans)
}

fn degraded(clip: &AudioClip, d: &Degradation) -> AudioClip {
    let op = Operator::new(d, clip.sample_rate, clip.num_frames(), &Device::Cpu).unwrap();
    let flat = Tensor::from_vec(clip.channels.concat(), (clip.num_channels(), clip.num_frames()), &Device::Cpu).unwrap();
    match op {
        Operator::Magnitude(_) => clip.clone(), // phase retrieval measures |STFT| of what it is given
        op => AudioClip::new(clip.sample_rate, op.apply(&flat).unwrap().to_vec2().unwrap()),
    }
}

fn tasks() -> Vec<(&'static str, Degradation)> {
    vec![
        ("inpaint", Degradation::Inpaint { gaps: vec![Gap { start: 0.3, end: 0.45 }] }),
        ("superres", Degradation::SuperResolution { cutoff_hz: 3000.0 }),
        ("dereverb", Degradation::Dereverb { response: ImpulseResponse::Synthetic { rt60: 0.3, seed: 1 } }),
        ("phase", Degradation::PHASE_RETRIEVAL),
    ]
}

/// `kind` at the paper's strength, or at `strength` (0 = the same sampler unguided).
fn method(kind: MethodKind, strength: Option<f64>) -> Method {
    match kind {
        MethodKind::Ditto => Method::Ditto(DittoSettings { chain_steps: 3, iterations: 3, learning_rate: strength.unwrap_or(0.5), ..Default::default() }),
        k => k.with_strength(strength),
    }
}

/// The task's loss of a restoration at the model's rate, against the degraded input there.
fn measurement_loss(prior: &AudioLdm2, d: &Degradation, observed: &AudioClip, restored: &AudioClip) -> f64 {
    let rate = prior.sample_rate();
    let observed = resample(&observed.channels, observed.sample_rate, rate).unwrap();
    let y = Tensor::from_slice(&observed[0], (1, observed[0].len()), &Device::Cpu).unwrap();
    let m = Measurement::for_degradation(d, &y, rate, &Device::Cpu).unwrap();
    let x = Tensor::from_slice(&restored.channels[0], (1, restored.channels[0].len()), &Device::Cpu).unwrap();
    m.loss(&x).unwrap().to_scalar::<f32>().unwrap() as f64
}

#[test]
fn every_task_with_every_method_runs_and_guidance_beats_no_guidance() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let clip = music(16_000, 0.64, 1);
    for (name, d) in tasks() {
        let observed = degraded(&clip, &d);
        let run = |kind: MethodKind, strength: Option<f64>, output: OutputMode, steps: usize| {
            let mut request = RestoreRequest::new(d.clone(), SamplerSettings::new(method(kind, strength), steps, 3));
            request.output = output;
            restore_clip(&prior, &observed, &request, &mut |_| ControlFlow::Continue(())).unwrap_or_else(|e| panic!("{name}/{kind}: {e}"))
        };
        for kind in MethodKind::ALL {
            let spliced = run(kind, None, OutputMode::Splice, 2);
            assert_eq!((spliced.sample_rate, spliced.num_channels(), spliced.num_frames()), (16_000, 1, clip.num_frames()), "{name}/{kind}");
            assert!(spliced.channels[0].iter().all(|v| v.is_finite()), "{name}/{kind}: non-finite output");
            if kind == MethodKind::Ddim {
                continue;
            }
            // Against the same sampler (same eta, same seed) with the guidance switched off.
            let unguided = measurement_loss(&prior, &d, &observed, &run(kind, Some(0.0), OutputMode::Model, 10));
            let guided = measurement_loss(&prior, &d, &observed, &run(kind, None, OutputMode::Model, 10));
            eprintln!("{name:9} {kind:6} loss {guided:10.3}   unguided {unguided:10.3}");
            assert!(guided < unguided, "{name}/{kind}: guided loss {guided} is not below unguided {unguided}");
        }
    }
}

fn quick(d: Degradation) -> RestoreRequest {
    RestoreRequest::new(d, SamplerSettings::new(MethodKind::Dgg.with_strength(None), 4, 0))
}

#[test]
fn stereo_inpainting_at_44k_changes_nothing_outside_the_gaps() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let clip = music(44_100, 1.2, 2);
    let d = Degradation::Inpaint { gaps: vec![Gap { start: 0.3, end: 0.5 }, Gap { start: 0.8, end: 0.85 }] };
    let observed = degraded(&clip, &d);
    let out = restore_clip(&prior, &observed, &quick(d), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((out.sample_rate, out.num_channels(), out.num_frames()), (44_100, 2, clip.num_frames()));
    let in_gap = |n: usize| (13_230..22_050).contains(&n) || (35_280..37_485).contains(&n);
    for (c, (o, x)) in out.channels.iter().zip(&observed.channels).enumerate() {
        for n in 0..o.len() {
            if !in_gap(n) {
                assert_eq!(o[n].to_bits(), x[n].to_bits(), "channel {c}, sample {n}");
            }
        }
        // and the gaps were filled
        assert!(o[15_000..20_000].iter().any(|&v| v != 0.0), "channel {c}: gap left empty");
    }
}

#[test]
fn super_resolution_keeps_the_band_below_the_cutoff() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let clip = music(22_050, 1.0, 1);
    let cutoff = 3000.0;
    let d = Degradation::SuperResolution { cutoff_hz: cutoff };
    let observed = degraded(&clip, &d);
    let out = restore_clip(&prior, &observed, &quick(d), &mut |_| ControlFlow::Continue(())).unwrap();
    assert_eq!((out.sample_rate, out.num_frames()), (22_050, clip.num_frames()));
    // Below 0.9 × cutoff the spectrum is the input's to within 1e-4 of its energy (the
    // splice filter's stop band is 80 dB down); above it, the restoration added energy.
    let config = StftConfig { n_fft: 1024, hop: 256 };
    let bins = config.bins();
    let (a, b) = (magnitude(&out.channels[0], config), magnitude(&observed.channels[0], config));
    let edge = (0.9 * cutoff / 22_050.0 * 1024.0) as usize;
    let (mut diff, mut energy, mut added) = (0f64, 0f64, 0f64);
    for f in 2..a.len() / bins - 2 {
        for k in 0..bins {
            let (x, y) = (a[f * bins + k] as f64, b[f * bins + k] as f64);
            if k < edge {
                diff += (x - y).powi(2);
                energy += y * y;
            } else if k > (1.1 * cutoff / 22_050.0 * 1024.0) as usize {
                added += (x - y).max(0.0);
            }
        }
    }
    assert!(diff / energy < 1e-4, "relative change below the cutoff {}", diff / energy);
    assert!(added > 0.0, "nothing restored above the cutoff");
}

#[test]
fn long_input_runs_in_overlapping_windows() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let clip = music(16_000, 2.5, 1);
    let d = Degradation::Inpaint { gaps: vec![Gap { start: 0.9, end: 1.6 }] };
    let observed = degraded(&clip, &d);
    let mut request = quick(d);
    request.window_seconds = 1.0;
    request.overlap_seconds = 0.25;
    let mut windows = std::collections::BTreeSet::new();
    let out = restore_clip(&prior, &observed, &request, &mut |p| {
        windows.insert((p.window, p.windows));
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(out.num_frames(), clip.num_frames());
    // 1 s windows with 0.25 s overlap: 0–1, 0.75–1.75, 1.5–2.5; all three touch the gap.
    assert_eq!(windows.iter().map(|w| w.1).collect::<std::collections::BTreeSet<_>>(), [3].into());
    assert_eq!(windows.len(), 3);
}

#[test]
fn cancelling_stops_the_job() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let observed = music(16_000, 1.0, 1);
    // Reports come while the input is read (step 0) and at every stage of a step.
    let mut seen = 0;
    let err = restore_clip(&prior, &observed, &quick(Degradation::PHASE_RETRIEVAL), &mut |p| {
        seen = p.step.step;
        if seen == 0 {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    })
    .unwrap_err();
    assert_eq!(seen, 1);
    assert!(err.to_string().contains("cancelled"), "{err}");
    let err = restore_clip(&prior, &observed, &quick(Degradation::PHASE_RETRIEVAL), &mut |_| ControlFlow::Break(())).unwrap_err();
    assert!(err.to_string().contains("cancelled"), "{err}");
}

#[test]
fn unusable_clips_are_clear_errors() {
    let g = Golden::load();
    let (prior, _dir) = prior(&g);
    let request = quick(Degradation::PHASE_RETRIEVAL);
    let run = |clip: AudioClip| restore_clip(&prior, &clip, &request, &mut |_| ControlFlow::Continue(())).unwrap_err().to_string();
    assert!(run(music(16_000, 1.0, 3)).contains("only mono and stereo"));
    assert!(run(music(16_000, 0.1, 1)).contains("at least"));
    let mut nan = music(16_000, 1.0, 2);
    nan.channels[1][100] = f32::NAN;
    assert!(run(nan).contains("channel 1 has a NaN"));
    let mut huge = music(16_000, 1.0, 2);
    huge.channels[0][200] = 1e30;
    assert!(run(huge).contains("channel 0 has a sample of 1e30 at 200, far beyond full scale"));
    // A cutoff the model cannot reach: refused without the band extension, which by
    // default continues the band above it instead.
    let beyond = RestoreRequest { full_band: false, ..quick(Degradation::SuperResolution { cutoff_hz: 10_000.0 }) };
    let sr = restore_clip(&prior, &music(44_100, 1.0, 1), &beyond, &mut |_| ControlFlow::Continue(()));
    assert!(sr.unwrap_err().to_string().contains("model's band limit"));
    let extended = restore_clip(&prior, &music(44_100, 1.0, 1), &RestoreRequest { full_band: true, ..beyond }, &mut |_| ControlFlow::Continue(()));
    assert_eq!(extended.unwrap().num_frames(), 44_100);
}
