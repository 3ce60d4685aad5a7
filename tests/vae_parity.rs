//! The AudioLDM2 VAE (diffusers `AutoencoderKL`) against diffusers, on the tiny fixture model:
//! decode and encode values within 1e-4 relative, the decoder's input gradient within 1e-3.

mod golden;

use candle_core::{DType, Var};
use candle_nn::VarBuilder;
use dgg_restore::model::vae::{AutoencoderKL, Config};
use golden::{assert_close, Golden};

const TOL: f64 = 1e-4;
const GRAD_TOL: f64 = 1e-3;

fn load(g: &Golden) -> (Config, AutoencoderKL) {
    let cfg = Config::load(&g.dir.join("vae/config.json")).expect("vae config");
    let weights = g.dir.join("vae/diffusion_pytorch_model.safetensors");
    // SAFETY: the fixture file is not modified while mapped.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &golden::device()) }.unwrap();
    let vae = AutoencoderKL::new(vb, &cfg).expect("vae weights");
    (cfg, vae)
}

#[test]
fn decode_matches_diffusers() {
    let g = Golden::load();
    let (cfg, vae) = load(&g);
    let z = g.get("vae.decode.in");
    let want = g.get("vae.decode.out");
    let k = cfg.downsample_factor();
    let (b, _, t, f) = z.dims4().unwrap();
    assert_eq!(want.dims(), &[b, cfg.out_channels, t * k, f * k]);

    let got = vae.decode(&z).unwrap();
    assert_close("vae.decode.out", &got, &want, TOL);
}

#[test]
fn decode_gradient_matches_torch_autograd() {
    let g = Golden::load();
    let (_, vae) = load(&g);
    let z = Var::from_tensor(&g.get("vae.decode.in")).unwrap();
    let cotangent = g.get("vae.decode.cotangent");

    let out = vae.decode(z.as_tensor()).unwrap();
    let loss = (out * &cotangent).unwrap().sum_all().unwrap();
    let grads = loss.backward().unwrap();
    let grad = grads.get(z.as_tensor()).expect("gradient reaches the latent");
    assert_close("vae.decode.grad_in", grad, &g.get("vae.decode.grad_in"), GRAD_TOL);
}

#[test]
fn encode_matches_diffusers() {
    let g = Golden::load();
    let (_, vae) = load(&g);
    let (mean, std) = vae.encode(&g.get("vae.encode.in")).unwrap();
    assert_close("vae.encode.mean", &mean, &g.get("vae.encode.mean"), TOL);
    assert_close("vae.encode.std", &std, &g.get("vae.encode.std"), TOL);
}

#[test]
fn unsupported_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    let write = |json: &str| std::fs::write(&path, json).unwrap();

    write(
        r#"{"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D", "AttnDownEncoderBlock2D"],
              "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"], "unknown_key": 1}"#,
    );
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`down_block_types`") && err.contains("AttnDownEncoderBlock2D"), "{err}");

    write(r#"{"block_out_channels": [32], "act_fn": "tanh"}"#);
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`act_fn`"), "{err}");

    write(r#"{"block_out_channels": [32, 64], "down_block_types": ["DownEncoderBlock2D"], "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"]}"#);
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`down_block_types`"), "{err}");

    write(r#"{"block_out_channels": [24], "norm_num_groups": 32}"#);
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`norm_num_groups`"), "{err}");

    // Factors that would take the latents out of f32's range, statistics of the wrong size.
    for (extra, field) in [
        (r#""scaling_factor": 0"#, "scaling_factor"),
        (r#""scaling_factor": -1"#, "scaling_factor"),
        (r#""shift_factor": 1e308"#, "shift_factor"),
        (r#""latents_mean": [0, 0, 0]"#, "latents_mean"),
    ] {
        write(&format!(r#"{{"block_out_channels": [32], "latent_channels": 4, {extra}}}"#));
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains(&format!("`{field}`")), "{extra}: {err}");
    }

    // 70 blocks would downsample by 2^69, past usize.
    write(&format!(r#"{{"block_out_channels": {:?}, "norm_num_groups": 1}}"#, vec![32; 70]));
    let err = Config::load(&path).unwrap_err().to_string();
    assert!(err.contains("`block_out_channels`"), "{err}");

    // The full-size AudioLDM2 config is accepted.
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/audioldm2-music/vae/config.json");
    if full.exists() {
        let cfg = Config::load(&full).unwrap();
        assert_eq!((cfg.in_channels, cfg.out_channels, cfg.latent_channels, cfg.downsample_factor()), (1, 1, 8, 4));
    }
}
