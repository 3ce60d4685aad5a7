//! AudioLDM2 as a `LatentPrior`, loaded from the fixture model directory as a user's model
//! directory would be: noise prediction with the conditioning held by the prior, latent
//! shapes, decoding, precisions, and the errors of a broken model directory.

mod golden;

use candle_core::{DType, Device, Tensor};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions, ModelConfigs, VAE_DECODE, VOCODER};
use dgg_restore::model::text::Conditioning;
use dgg_restore::restore::noise::NoiseSource;
use dgg_restore::restore::prior::{LatentPrior, Part};
use golden::{assert_close, Golden};
use std::path::Path;

const TOL: f64 = 1e-4;

/// The conditioning of item `i` of UNet case `case`.
fn conditioning(g: &Golden, case: &str, i: usize, masked: bool) -> Conditioning {
    let item = |name: &str| g.get(&format!("unet.{case}.{name}")).narrow(0, i, 1).unwrap();
    Conditioning {
        encoder_hidden_states: item("encoder_hidden_states"),
        encoder_hidden_states_1: item("encoder_hidden_states_1"),
        attention_mask_1: masked.then(|| item("encoder_attention_mask_1")),
    }
}

fn load(g: &Golden, options: &LoadOptions) -> AudioLdm2 {
    AudioLdm2::load(&g.dir, options, &conditioning(g, "b1", 0, false)).unwrap_or_else(|e| panic!("{e}"))
}

fn timesteps(t: &Tensor) -> Vec<usize> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&t| t as usize).collect()
}

#[test]
fn predicts_noise_with_its_conditioning_repeated_over_the_batch() {
    let g = Golden::load();
    let prior = load(&g, &golden::load_options());
    let (sample, want) = (g.get("unet.b1.sample"), g.get("unet.b1.out"));
    let t = timesteps(&g.get("unet.b1.timestep"));
    assert_close("prior eps (batch 1)", &prior.predict_noise(&sample, &t).unwrap(), &want, TOL);

    let pair = Tensor::cat(&[&sample, &sample], 0).unwrap();
    let eps = prior.predict_noise(&pair, &[t[0], t[0]]).unwrap();
    for i in 0..2 {
        assert_close("prior eps (item of a batch of 2)", &eps.narrow(0, i, 1).unwrap(), &want, TOL);
    }
}

#[test]
fn the_flan_t5_mask_reaches_the_unet() {
    let g = Golden::load();
    // Item 1 of the batch-2 case has a partial mask.
    let prior = AudioLdm2::load(&g.dir, &golden::load_options(), &conditioning(&g, "b2", 1, true)).unwrap();
    let item = |name: &str| g.get(&format!("unet.b2.{name}")).narrow(0, 1, 1).unwrap();
    let t = timesteps(&g.get("unet.b2.timestep"));
    let eps = prior.predict_noise(&item("sample"), &t[1..]).unwrap();
    assert_close("prior eps (masked)", &eps, &item("out"), TOL);
}

#[test]
fn latent_shapes_round_up_to_what_the_networks_take() {
    let g = Golden::load();
    let prior = load(&g, &golden::load_options());
    let cfgs = ModelConfigs::load(&g.dir).unwrap();
    let hop = cfgs.vocoder.hop_length();
    let k = cfgs.vae.downsample_factor();
    let (c, h1, w) = prior.latent_shape(1);
    assert_eq!((c, w), (cfgs.vae.latent_channels, cfgs.vocoder.model_in_dim / k));
    // The smallest latent covers whole UNet levels: frames = k · h1 must be the multiple.
    let multiple = h1 * k;
    for samples in [1, hop, multiple * hop, multiple * hop + 1, 3 * multiple * hop - 5] {
        let (_, h, _) = prior.latent_shape(samples);
        let frames = h * k;
        assert_eq!(frames % multiple, 0, "{samples} samples");
        assert!(frames * hop >= samples && (frames - multiple) * hop < samples, "{samples} samples → {frames} frames");
    }
    assert_eq!(prior.sample_rate() as usize, cfgs.vocoder.sampling_rate);
}

#[test]
fn decode_is_vae_then_vocoder_cropped_and_differentiable() {
    let g = Golden::load();
    let prior = load(&g, &golden::load_options());
    let cfgs = ModelConfigs::load(&g.dir).unwrap();
    let samples = 2 * cfgs.vocoder.hop_length() * prior.latent_shape(1).1 * cfgs.vae.downsample_factor() - 37;
    let (c, h, w) = prior.latent_shape(samples);
    let z = NoiseSource::new(5, 0).draw((2, c, h, w), &golden::device()).unwrap();

    let wave = prior.decode(&z, samples).unwrap();
    assert_eq!(wave.dims(), &[2, samples]);
    // The same through the components, as diffusers' pipeline chains them.
    let mel = prior.vae().decode(&(&z / cfgs.vae.scaling_factor).unwrap()).unwrap().squeeze(1).unwrap();
    let direct = prior.vocoder().forward(&mel).unwrap().narrow(1, 0, samples).unwrap();
    assert_close("prior decode vs its components", &wave, &direct, 1e-6);
    // The guidance steps through the VAE decoder's blocks, then the vocoder's.
    let networks: Vec<&str> = prior.decoder_stages().iter().map(|s| s.network).collect();
    let (vae_blocks, vocoder_blocks) = (prior.vae().decode_blocks(), prior.vocoder().blocks());
    assert_eq!((vae_blocks, vocoder_blocks), (cfgs.vae.block_out_channels.len() + 1, cfgs.vocoder.upsample_rates.len()));
    assert_eq!(networks, [vec![VAE_DECODE; vae_blocks], vec![VOCODER; vocoder_blocks]].concat());

    let z = candle_core::Var::from_tensor(&z).unwrap();
    let loss = prior.decode(z.as_tensor(), samples).unwrap().sqr().unwrap().sum_all().unwrap();
    let grad = loss.backward().unwrap().get(z.as_tensor()).expect("a gradient reaches the latent").clone();
    assert_eq!(grad.dims(), z.dims());
    assert!(grad.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
}

/// diffusers' pipeline: `vocoder(vae.decode(z / scaling_factor).squeeze(1))[:, :samples]`,
/// and the gradient of ⟨out, cotangent⟩ w.r.t. `z` by torch autograd.
#[test]
fn decode_matches_the_diffusers_pipeline() {
    let g = Golden::load();
    let prior = load(&g, &golden::load_options());
    let z = candle_core::Var::from_tensor(&g.get("prior.decode.in")).unwrap();
    let samples = g.scalar("prior.decode.samples") as usize;
    let wave = prior.decode(z.as_tensor(), samples).unwrap();
    assert_close("prior decode", &wave, &g.get("prior.decode.out"), TOL);
    let grads = (wave * g.get("prior.decode.cotangent")).unwrap().sum_all().unwrap().backward().unwrap();
    assert_close("prior decode gradient", grads.get(z.as_tensor()).unwrap(), &g.get("prior.decode.grad_in"), 1e-3);
}

#[test]
fn half_precision_follows_f32() {
    let g = Golden::load();
    // bf16 runs on CUDA only (candle's CPU backend has no bf16 matrix product); its 8-bit
    // mantissa rounds 8 times coarser than f16's 11.
    let cuda = golden::device().is_cuda();
    for (dtype, tolerance) in [(DType::F16, 2e-2), (DType::BF16, 1e-1)].into_iter().filter(|(d, _)| cuda || *d == DType::F16) {
        let half = load(&g, &LoadOptions { device: golden::device(), dtype });
        let (sample, want) = (g.get("unet.b1.sample"), g.get("unet.b1.out"));
        let eps = half.predict_noise(&sample, &timesteps(&g.get("unet.b1.timestep"))).unwrap();
        assert_eq!(eps.dtype(), DType::F32);
        assert_close(&format!("prior eps in {dtype:?}"), &eps, &want, tolerance);
    }
}

#[test]
fn a_directory_without_model_index_is_not_a_model() {
    let g = Golden::load();
    let dir = tempfile::tempdir().unwrap();
    let err = AudioLdm2::load(dir.path(), &LoadOptions::default(), &conditioning(&g, "b1", 0, false)).err().unwrap().to_string();
    assert!(err.contains(&dir.path().display().to_string()) && err.contains("model_index.json") && err.contains("models/README.md"), "{err}");
}

#[test]
fn a_broken_model_directory_names_the_component_and_file() {
    let g = Golden::load();
    let cond = conditioning(&g, "b1", 0, false);
    let load_err = |dir: &Path| AudioLdm2::load(dir, &LoadOptions::default(), &cond).err().expect("must fail").to_string();

    let dir = g.copy_dir();
    std::fs::remove_dir_all(dir.path().join("vae")).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains("vae/config.json"), "{err}");

    let dir = g.copy_dir();
    let weights = dir.path().join("vocoder/model.safetensors");
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(dir.path());
    assert!(err.contains(&weights.display().to_string()) && err.contains("download it again"), "{err}");

    // A UNet config that no longer fits its weights: the error names the tensor.
    let dir = g.copy_dir();
    let cfg_path = dir.path().join("unet/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    let width = cfg["block_out_channels"][0].as_u64().unwrap();
    cfg["block_out_channels"][0] = (2 * width).into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = load_err(dir.path());
    assert!(err.starts_with("unet: ") && err.contains("diffusion_pytorch_model.safetensors") && err.contains("tensor `"), "{err}");
}

#[test]
fn configs_that_disagree_are_named() {
    let g = Golden::load();
    let cond = conditioning(&g, "b1", 0, false);
    let dir = g.copy_dir();
    let cfg_path = dir.path().join("vae/config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["latent_channels"] = 1_000_000_000.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let err = AudioLdm2::load(dir.path(), &LoadOptions::default(), &cond).err().expect("must fail").to_string();
    assert!(err.contains("unet/config.json") && err.contains("vae/config.json") && err.contains("latent_channels 1000000000"), "{err}");
}

/// Weights that overflow are found only when they run: the error names their files.
#[test]
fn a_network_that_overflows_is_blamed_with_its_files() {
    let g = Golden::load();
    let cond = conditioning(&g, "b1", 0, false);
    for (file, part) in [("unet/diffusion_pytorch_model.safetensors", Part::NoisePredictor), ("vocoder/model.safetensors", Part::Decoder)] {
        let dir = g.copy_dir();
        let path = dir.path().join(file);
        let tensors: std::collections::HashMap<String, Tensor> =
            candle_core::safetensors::load(&path, &Device::Cpu).unwrap().into_iter().map(|(k, t)| (k, (t * 1e30).unwrap())).collect();
        candle_core::safetensors::save(&tensors, &path).unwrap();
        let prior = AudioLdm2::load(dir.path(), &LoadOptions::default(), &cond).unwrap();
        assert!(prior.describe(part).contains(&path.display().to_string()), "{}", prior.describe(part));
        let (c, h, w) = prior.latent_shape(4000);
        let z = Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu).unwrap();
        let out = match part {
            Part::NoisePredictor => prior.predict_noise(&z, &[10]).unwrap(),
            Part::Decoder => prior.decode(&z, 4000).unwrap(),
        };
        assert!(!out.sqr().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap().is_finite(), "{file}: the output should overflow");
    }
}

#[test]
fn conditioning_of_the_wrong_width_is_refused() {
    let g = Golden::load();
    let mut cond = conditioning(&g, "b1", 0, false);
    let (_, l, d) = cond.encoder_hidden_states.dims3().unwrap();
    cond.encoder_hidden_states = Tensor::zeros((1, l, d + 1), DType::F32, &Device::Cpu).unwrap();
    let err = AudioLdm2::load(&g.dir, &LoadOptions::default(), &cond).err().unwrap().to_string();
    assert!(err.contains("encoder_hidden_states has width") && err.contains(&format!("{}", d + 1)), "{err}");
}

#[test]
fn bf16_on_the_cpu_is_refused_before_loading() {
    let g = Golden::load();
    let options = LoadOptions { dtype: candle_core::DType::BF16, ..LoadOptions::default() };
    let e = AudioLdm2::load_for_prompt(&g.dir, &options, "", 1.0).err().expect("bf16 on the CPU is refused");
    assert!(e.to_string().contains("does not run on the CPU") && e.to_string().contains("f32"), "{e}");
}
