//! The candle AudioLDM2 UNet against diffusers' `AudioLDM2UNet2DConditionModel` on a tiny
//! random model (`tests/fixtures/golden/unet/`, or `$DGG_GOLDEN_DIR/unet/`).

mod golden;

use candle_core::DType;
use candle_nn::VarBuilder;
use dgg_restore::config::read_config;
use dgg_restore::model::unet::{AudioLdm2UNet, Config};
use golden::Golden;

const TOL: f64 = 1e-4;

fn load(g: &Golden) -> AudioLdm2UNet {
    let cfg: Config = read_config(&g.dir.join("unet/config.json")).unwrap();
    let weights = g.dir.join("unet/diffusion_pytorch_model.safetensors");
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], DType::F32, &golden::device()).unwrap() };
    AudioLdm2UNet::new(vb, &cfg).unwrap()
}

/// Runs case `name`; the mask is used when the fixture has one.
fn check(g: &Golden, unet: &AudioLdm2UNet, name: &str, masked: bool) {
    let get = |t: &str| g.get(&format!("unet.{name}.{t}"));
    let mask = masked.then(|| get("encoder_attention_mask_1"));
    let out = unet.forward(&get("sample"), &get("timestep"), &get("encoder_hidden_states"), &get("encoder_hidden_states_1"), mask.as_ref()).unwrap();
    golden::assert_close(&format!("unet.{name}"), &out, &get("out"), TOL);
}

#[test]
fn unet_batch_1() {
    let g = Golden::load();
    check(&g, &load(&g), "b1", false);
}

/// Two items, different timesteps, with a Flan-T5 mask that hides some keys.
#[test]
fn unet_batch_2_masked() {
    let g = Golden::load();
    check(&g, &load(&g), "b2", true);
}

/// Spatial size not divisible by 2^levels: the up path resizes to the skip states.
#[test]
fn unet_odd_size() {
    let g = Golden::load();
    check(&g, &load(&g), "odd", true);
}

/// The mask matters: without it the b2 output differs (guards against a mask that is ignored).
#[test]
fn unet_mask_is_used() {
    let g = Golden::load();
    let unet = load(&g);
    let get = |t: &str| g.get(&format!("unet.b2.{t}"));
    let mask = get("encoder_attention_mask_1");
    let all_kept = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&m| m == 1.0);
    if all_kept {
        return;
    }
    let out = unet.forward(&get("sample"), &get("timestep"), &get("encoder_hidden_states"), &get("encoder_hidden_states_1"), None).unwrap();
    let err = golden::relative_error(&out, &get("out"));
    assert!(err > 10.0 * TOL, "unmasked output matches the masked reference ({err:.2e})");
}
