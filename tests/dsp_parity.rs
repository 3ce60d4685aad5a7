//! The spectral front end against torch / torchaudio / librosa (tolerance 1e-4 relative).

mod golden;

use candle_core::{Device, Tensor, Var};
use dgg_restore::dsp::lsd::lsd;
use dgg_restore::dsp::mel::{filterbank, AudioLdmMel, LossMel, LossMelConfig, MelScale};
use dgg_restore::dsp::stft::{Stft, StftConfig};
use golden::{assert_close, Golden};

const TOL: f64 = 1e-4;

/// Forward value and d(sum(f(wave)))/d(wave).
fn value_and_grad_of_sum(wave: &Tensor, f: impl Fn(&Tensor) -> Tensor) -> (Tensor, Tensor) {
    let var = Var::from_tensor(wave).unwrap();
    let out = f(var.as_tensor());
    let grads = out.sum_all().unwrap().backward().unwrap();
    let grad = grads.get(var.as_tensor()).expect("gradient reaches the waveform").clone();
    (out, grad)
}

/// (1, frames, n) in our layout → torch's (1, n, frames).
fn torch_layout(x: &Tensor) -> Tensor {
    x.transpose(1, 2).unwrap().contiguous().unwrap()
}

#[test]
fn slaney_filterbank_matches_librosa() {
    let g = Golden::load();
    let want = g.get("mel.basis");
    let (n_mels, bins) = want.dims2().unwrap();
    let fb = filterbank(MelScale::Slaney, 16_000, 2 * (bins - 1), n_mels, 0.0, 8000.0);
    let got = Tensor::from_vec(fb.iter().map(|&v| v as f32).collect::<Vec<_>>(), (n_mels, bins), &Device::Cpu).unwrap();
    assert_close("mel.basis", &got, &want, TOL);
}

#[test]
fn stft_magnitude_matches_torch() {
    let g = Golden::load();
    let stft = Stft::new(StftConfig::AUDIOLDM, &golden::device()).unwrap();
    let got = stft.magnitude(&g.wave("mel.wav")).unwrap();
    assert_close("stft.mag", &torch_layout(&got).squeeze(0).unwrap(), &g.get("stft.mag"), TOL);
}

#[test]
fn audioldm_log_mel_and_its_gradient_match() {
    let g = Golden::load();
    let mel = AudioLdmMel::new(&golden::device()).unwrap();
    let (out, grad) = value_and_grad_of_sum(&g.wave("mel.wav"), |w| mel.forward(w).unwrap());
    assert_close("mel.logmel", &out.squeeze(0).unwrap(), &g.get("mel.logmel"), TOL);
    assert_close("mel.grad_wav_of_sum", &grad.squeeze(0).unwrap(), &g.get("mel.grad_wav_of_sum"), TOL);
}

#[test]
fn loss_mel_with_clamp_handles_digital_silence() {
    let g = Golden::load();
    let mel = LossMel::new(LossMelConfig::paper(Some(80.0)), &golden::device()).unwrap();
    let (out, grad) = value_and_grad_of_sum(&g.wave("lossmel.wav"), |w| mel.forward(w).unwrap());
    let out = torch_layout(&out);
    // The fixture has silent frames: they must sit exactly on the clamp, not be NaN.
    let min = out.min_all().unwrap().to_scalar::<f32>().unwrap();
    assert_eq!(min, -80.0, "silent frames must clamp to -80 dB");
    assert_close("lossmel.melspec_db", &out, &g.get("lossmel.melspec_db"), TOL);
    assert_close("lossmel.grad_wav_of_sum", &grad.squeeze(0).unwrap(), &g.get("lossmel.grad_wav_of_sum"), TOL);
}

#[test]
fn loss_mel_settings_are_configurable() {
    let g = Golden::load();
    let config = LossMelConfig {
        sample_rate: g.scalar("lossmel_small.sample_rate") as u32,
        stft: StftConfig { n_fft: g.scalar("lossmel_small.n_fft") as usize, hop: g.scalar("lossmel_small.hop") as usize },
        n_mels: g.scalar("lossmel_small.n_mels") as usize,
        clamp: None,
    };
    let mel = LossMel::new(config, &golden::device()).unwrap();
    let (out, grad) = value_and_grad_of_sum(&g.wave("lossmel_small.wav"), |w| mel.forward(w).unwrap());
    assert_close("lossmel_small.melspec_db", &torch_layout(&out), &g.get("lossmel_small.melspec_db"), TOL);
    assert_close("lossmel_small.grad_wav_of_sum", &grad.squeeze(0).unwrap(), &g.get("lossmel_small.grad_wav_of_sum"), TOL);
}

#[test]
fn phase_retrieval_features_match() {
    let g = Golden::load();
    let mel = LossMel::new(LossMelConfig::paper(Some(80.0)), &golden::device()).unwrap();
    let (out, grad) = value_and_grad_of_sum(&g.wave("phasemel.wav"), |w| mel.magnitude_features(&mel.stft().magnitude(w).unwrap()).unwrap());
    assert_close("phasemel.mel", &torch_layout(&out), &g.get("phasemel.mel"), TOL);
    assert_close("phasemel.grad_wav_of_sum", &grad.squeeze(0).unwrap(), &g.get("phasemel.grad_wav_of_sum"), TOL);
}

#[test]
fn lsd_matches_the_reference() {
    let g = Golden::load();
    let signal = |name: &str| g.get(name).flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got = lsd(&signal("lsd.ref"), &signal("lsd.est")).unwrap();
    let want = g.scalar("lsd.value");
    println!("lsd: {got} vs {want}");
    assert!(((got - want) / want).abs() < TOL, "LSD {got} vs reference {want}");
    assert_eq!(lsd(&signal("lsd.ref"), &signal("lsd.ref")).unwrap(), 0.0);
}
