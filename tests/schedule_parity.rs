//! The DDIM schedule against diffusers' `DDIMScheduler`.

mod golden;

use dgg_restore::restore::schedule::DdimSchedule;
use golden::Golden;

fn schedule(g: &Golden) -> DdimSchedule {
    DdimSchedule::from_file(&g.dir.join("scheduler/scheduler_config.json")).unwrap()
}

#[test]
fn alphas_cumprod_match() {
    let g = Golden::load();
    let want = g.get("sched.alphas_cumprod").to_vec1::<f32>().unwrap();
    let got = schedule(&g).alphas_cumprod().to_vec();
    assert_eq!(got.len(), want.len());
    let err = got.iter().zip(&want).map(|(a, b)| (a - *b as f64).abs()).fold(0.0, f64::max);
    assert!(err < 1e-6, "max abs error {err}");
}

#[test]
fn inference_timesteps_match() {
    let g = Golden::load();
    let want: Vec<usize> = g.get("sched.timesteps_50").to_vec1::<f32>().unwrap().iter().map(|&t| t as usize).collect();
    assert_eq!(schedule(&g).timesteps(want.len()), want);
}

#[test]
fn one_deterministic_ddim_step_matches() {
    // The schedule's ᾱ_t and ᾱ_prev give diffusers' eta-0 DDIM update:
    // x0 = (x − √(1−ᾱ_t)·ε)/√ᾱ_t, prev = √ᾱ_prev·x0 + √(1−ᾱ_prev)·ε.
    let g = Golden::load();
    let s = schedule(&g);
    let t = g.scalar("sched.step.t") as usize;
    let (a_t, a_prev) = (s.alpha_cumprod(t), s.alpha_cumprod_prev(t, 50));
    let x = g.get("sched.step.sample");
    let eps = g.get("sched.step.model_output");
    let x0 = ((&x - (&eps * (1.0 - a_t).sqrt()).unwrap()).unwrap() / a_t.sqrt()).unwrap();
    let prev = ((x0 * a_prev.sqrt()).unwrap() + (eps * (1.0 - a_prev).sqrt()).unwrap()).unwrap();
    golden::assert_close("sched.step.prev_sample", &prev, &g.get("sched.step.prev_sample"), 1e-5);
}

/// An absurd `num_train_timesteps`, betas outside (0, 1) or reversed, an offset past the
/// schedule: errors naming the file and the field, not an allocation abort or NaN later.
#[test]
fn impossible_schedules_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scheduler_config.json");
    for (config, field) in [
        (r#""num_train_timesteps": 1000000000000, "beta_start": 0.0015, "beta_end": 0.0195"#, "num_train_timesteps"),
        (r#""num_train_timesteps": 1000, "beta_start": 1.0, "beta_end": 1.0"#, "beta_start/beta_end"),
        (r#""num_train_timesteps": 1000, "beta_start": -0.1, "beta_end": 0.0195"#, "beta_start/beta_end"),
        (r#""num_train_timesteps": 1000, "beta_start": 0.0195, "beta_end": 0.0015"#, "beta_start"),
        (r#""num_train_timesteps": 1000, "beta_start": 0.0015, "beta_end": 0.0195, "steps_offset": 1000"#, "steps_offset"),
    ] {
        std::fs::write(&path, format!(r#"{{{config}, "beta_schedule": "scaled_linear"}}"#)).unwrap();
        let e = DdimSchedule::from_file(&path).expect_err("refused").to_string();
        assert!(e.contains(field) && e.contains("scheduler_config.json"), "{config}: {e}");
    }
}
