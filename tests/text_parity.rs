//! AudioLDM2's text conditioning against diffusers' `AudioLDM2Pipeline.encode_prompt` on tiny
//! random text models saved in the published layout (CLAP text branch, Flan-T5 encoder,
//! projection model, GPT-2, both tokenizers), for the prompts in `text_prompts.json`; and
//! the conditioning cache.

mod golden;

use candle_core::{DType, Device, Tensor};
use dgg_restore::model::audioldm2::{AudioLdm2, LoadOptions};
use dgg_restore::model::text::cache::{ConditioningCache, Prompt, Source};
use dgg_restore::model::text::{TextEncoders, TEXT_COMPONENTS};
use dgg_restore::restore::noise::NoiseSource;
use dgg_restore::restore::prior::LatentPrior;
use golden::{assert_close, Golden};

const TOL: f64 = 1e-4;

fn prompts(g: &Golden) -> Vec<String> {
    let text = std::fs::read_to_string(g.dir.join("text_prompts.json")).expect("text_prompts.json");
    serde_json::from_str(&text).unwrap()
}

fn ids(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|&v| v as u32).collect()
}

#[test]
fn every_stage_matches_the_pipeline() {
    let g = Golden::load();
    let mut text = TextEncoders::load(&g.dir, &golden::device()).unwrap_or_else(|e| panic!("{e}"));
    for (i, prompt) in prompts(&g).iter().enumerate() {
        let name = |t: &str| format!("text.p{i}.{t}");
        let s = text.stages(prompt, None).unwrap();
        assert_eq!(s.clap_ids, ids(&g.get(&name("clap_ids"))), "RoBERTa ids of {prompt:?}");
        assert_eq!(s.t5_ids, ids(&g.get(&name("t5_ids"))), "T5 ids of {prompt:?}");
        assert_close(&name("clap_features"), &s.clap_features, &g.get(&name("clap_features")), TOL);
        assert_close(&name("t5_states"), &s.t5_states, &g.get(&name("t5_states")), TOL);
        assert_close(&name("t5_mask"), &s.t5_mask, &g.get(&name("t5_mask")), 0.0);
        assert_close(&name("projected"), &s.projected, &g.get(&name("projected")), TOL);
        assert_close(&name("projected_mask"), &s.projected_mask, &g.get(&name("projected_mask")), 0.0);
        assert_close(&name("generated"), &s.generated, &g.get(&name("generated")), TOL);
    }
}

/// Classifier-free guidance: the negative prompt "" padded to the positive prompt's Flan-T5
/// length; the masked positions are not compared (the reference fills them with the T5
/// outputs of pad tokens, which the UNet never sees).
#[test]
fn the_negative_prompt_is_padded_like_the_pipeline() {
    let g = Golden::load();
    let mut text = TextEncoders::load(&g.dir, &golden::device()).unwrap();
    let positive = text.encode(&prompts(&g)[1]).unwrap();
    let l = positive.encoder_hidden_states_1.dim(1).unwrap();
    let negative = text.encode_negative("", l).unwrap();
    let (embeds, mask, generated) = (g.get("text.cfg.prompt_embeds"), g.get("text.cfg.attention_mask"), g.get("text.cfg.generated"));
    let item = |t: &Tensor, i: usize| t.narrow(0, i, 1).unwrap();
    for (i, c) in [&negative, &positive].into_iter().enumerate() {
        let m = c.attention_mask_1.as_ref().unwrap();
        assert_close("cfg mask", m, &item(&mask, i), 0.0);
        let masked = c.encoder_hidden_states_1.broadcast_mul(&m.unsqueeze(2).unwrap()).unwrap();
        let want = item(&embeds, i).broadcast_mul(&m.unsqueeze(2).unwrap()).unwrap();
        assert_close("cfg Flan-T5 states", &masked, &want, TOL);
        assert_close("cfg generated", &c.encoder_hidden_states, &item(&generated, i), TOL);
    }
}

#[test]
fn the_cache_spares_the_text_models_on_the_second_run() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let prompt = Prompt { text: prompts(&g)[1].clone(), negative: Some(String::new()) };
    let cache = ConditioningCache::new(dir.path());
    let (first, source) = cache.get(&prompt, &Device::Cpu).unwrap();
    assert_eq!(source, Source::TextModels);
    assert_close("conditioning vs the pipeline", &first.conditional.encoder_hidden_states, &g.get("text.p1.generated"), TOL);

    // Without the text models the second run can only succeed from the cache.
    for c in TEXT_COMPONENTS {
        std::fs::remove_dir_all(dir.path().join(c)).unwrap();
    }
    let (second, source) = ConditioningCache::new(dir.path()).get(&prompt, &Device::Cpu).unwrap();
    assert_eq!(source, Source::Cache);
    assert_close("cached", &second.conditional.encoder_hidden_states, &first.conditional.encoder_hidden_states, 0.0);
    assert_close("cached negative", &second.unconditional.unwrap().encoder_hidden_states_1, &first.unconditional.unwrap().encoder_hidden_states_1, 0.0);

    // The cached conditioning drives the prior.
    let prior = AudioLdm2::load(dir.path(), &LoadOptions::default(), &second.conditional).unwrap();
    let (c, h, w) = prior.latent_shape(4000);
    let eps = prior.predict_noise(&Tensor::zeros((1, c, h, w), DType::F32, &Device::Cpu).unwrap(), &[10]).unwrap();
    assert_eq!(eps.dims(), &[1, c, h, w]);

    // Another prompt is not cached, and there is nothing to compute it with.
    let err = ConditioningCache::new(dir.path()).get(&Prompt::null(), &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("no cached conditioning") && err.contains("text_encoder/") && err.contains("models/README.md"), "{err}");

    // A damaged entry is named, not used: NaN states would fail only at the first step.
    let entry = std::fs::read_dir(dir.path().join("conditioning"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .unwrap();
    let mut tensors = candle_core::safetensors::load(&entry, &Device::Cpu).unwrap();
    let states = tensors.get("cond.encoder_hidden_states").unwrap();
    tensors.insert("cond.encoder_hidden_states".into(), (states * f64::NAN).unwrap());
    candle_core::safetensors::save(&tensors, &entry).unwrap();
    let err = ConditioningCache::new(dir.path()).get(&prompt, &Device::Cpu).unwrap_err().to_string();
    assert!(err.contains(&entry.display().to_string()) && err.contains("NaN") && err.contains("cond.encoder_hidden_states"), "{err}");
}

#[test]
fn a_stale_entry_is_recomputed_when_the_text_models_change() {
    let g = Golden::load();
    let dir = g.copy_dir();
    let prompt = Prompt::null();
    assert_eq!(ConditioningCache::new(dir.path()).get(&prompt, &Device::Cpu).unwrap().1, Source::TextModels);
    assert_eq!(ConditioningCache::new(dir.path()).get(&prompt, &Device::Cpu).unwrap().1, Source::Cache);
    let cfg = dir.path().join("language_model/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{text}\n")).unwrap();
    assert_eq!(ConditioningCache::new(dir.path()).get(&prompt, &Device::Cpu).unwrap().1, Source::TextModels);
}

#[test]
fn a_model_directory_without_text_models_says_what_is_missing() {
    let g = Golden::load();
    let dir = g.copy_dir();
    std::fs::remove_dir_all(dir.path().join("tokenizer_2")).unwrap();
    let err = TextEncoders::load(dir.path(), &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("tokenizer_2") && err.contains("missing"), "{err}");
}

/// Classifier-free guidance in the prior: ε(uncond) + s·(ε(cond) − ε(uncond)) from one
/// doubled batch equals the two conditionings run apart.
#[test]
fn guidance_combines_the_conditional_and_unconditional_noise() {
    let g = Golden::load();
    let mut text = TextEncoders::load(&g.dir, &golden::device()).unwrap();
    let cond = text.encode(&prompts(&g)[1]).unwrap();
    let uncond = text.encode_negative("", cond.encoder_hidden_states_1.dim(1).unwrap()).unwrap();
    let options = LoadOptions::default();
    let plain = |c| AudioLdm2::load(&g.dir, &options, c).unwrap();
    let (c_prior, u_prior) = (plain(&cond), plain(&uncond));
    let scale = 3.0;
    let guided = plain(&cond).with_guidance(&uncond, scale).unwrap();

    let (c, h, w) = guided.latent_shape(3000);
    let z = NoiseSource::new(11, 0).draw((2, c, h, w), &Device::Cpu).unwrap();
    let t = [700, 40];
    let (eps_c, eps_u) = (c_prior.predict_noise(&z, &t).unwrap(), u_prior.predict_noise(&z, &t).unwrap());
    let want = (&eps_u + ((&eps_c - &eps_u).unwrap() * scale).unwrap()).unwrap();
    // Only float rounding separates the two, but s·(ε_c − ε_u) amplifies it: over random
    // latents it reached 2e-5, so the f32 forward tolerance of the other tests applies.
    assert_close("guided eps", &guided.predict_noise(&z, &t).unwrap(), &want, 1e-4);

    let short = text.encode("").unwrap();
    let err = plain(&cond).with_guidance(&short, scale).err().unwrap().to_string();
    assert!(err.contains("length"), "{err}");
}
