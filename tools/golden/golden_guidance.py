"""Sampler-step sections of the golden fixtures: the DDIM inference schedules
(``ddim``) and ONE guided sampler step of each method — DGG, MPGD, DPS — from the same
inputs (``guidance``), see DESIGN.md §2 ("The algorithm, exactly").

The UNet's noise prediction is an INPUT here (a standard-normal tensor), so no UNet is
needed; the loss goes through the tiny VAE decoder and vocoder of this fixture dir
(``golden_models.prior_models`` / ``prior_decode``, as the ``prior`` section) and the
loss-space mel of ``golden_dsp`` (``loss_melspec`` + ``to_db``, no ±80 clamp: the
inpainting setting). Everything is computed in float64 from the float32 weights and
float32-rounded inputs, with the scheduler's (float32) ``alphas_cumprod`` promoted to
float64, and stored as float32 by make_golden.py.

Every section is ``section_xxx(rng) -> dict[str, torch.Tensor]`` like the others.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

import golden_dsp
import golden_models
from golden_models import STATS, LeakyReluMargin, f32, out_dir, prior_decode, prior_models

F64 = torch.float64

STEPS = 50  # the run whose timesteps the guided step uses
STEP_INDEX = 25  # t = timesteps_50[25] = 481, t_prev = 461
LATENT_T = {"default": 5, "alt": 6}  # latent frames -> 20 [24] mel frames
CROP = 53  # wave_len = vocoder hop * mel frames - CROP (not a multiple of the hop)
GAP = (0.2, 0.3)  # gap length, fraction of the clip
GAMMA, DGG_ETA = 0.08, 1.0
MPGD_RATE, DPS_RATE = 5e-3, 5e-4
# loss-space mel (small, so the short clip has many frames)
LOSS_SR, LOSS_N_FFT, LOSS_HOP, LOSS_N_MELS = 16000, 64, 16, 8
SLERP_DOT_THRESHOLD = 0.9995
POWER_FLOOR = 1e-10  # AmplitudeToDB's amin


def scheduler():
    """The DDIMScheduler of this fixture dir (OUT/scheduler, the full-size config)."""
    from diffusers import DDIMScheduler

    d = out_dir("scheduler")
    if d is None or not (d / "scheduler_config.json").is_file():
        raise RuntimeError("ddim/guidance: run the scheduler section first (no OUT/scheduler)")
    return DDIMScheduler.from_pretrained(str(d))


def scalar(v) -> torch.Tensor:
    return torch.tensor([float(v)], dtype=F64)


# ---------------------------------------------------------------------------
# DDIM schedules
# ---------------------------------------------------------------------------
def section_ddim(rng: np.random.Generator) -> dict:
    """alphas_cumprod and the inference timesteps of set_timesteps(500 / 200 / 50)."""
    sched = scheduler()
    out = {"ddim.alphas_cumprod": sched.alphas_cumprod.double()}
    for n in (500, 200, 50):
        sched.set_timesteps(n)
        ts = sched.timesteps.clone()
        assert len(ts) == n and bool((ts[:-1] > ts[1:]).all())
        out[f"ddim.timesteps_{n}"] = ts.double()
    return out


# ---------------------------------------------------------------------------
# One guided step: DGG, MPGD, DPS
# ---------------------------------------------------------------------------
def slerp(n: torch.Tensor, d: torch.Tensor, gamma: float):
    """DESIGN §2 step 6: spherical interpolation from ``n`` towards ``d`` (whole tensor);
    linear when |cos θ| > 0.9995. Returns (mixed, cos θ)."""
    cos = float((n / n.norm() * (d / d.norm())).sum())
    if abs(cos) > SLERP_DOT_THRESHOLD:
        return (1 - gamma) * n + gamma * d, cos
    theta = math.acos(cos)
    w0 = math.sin((1 - gamma) * theta) / math.sin(theta)
    w1 = math.sin(gamma * theta) / math.sin(theta)
    return w0 * n + w1 * d, cos


def section_guidance(rng: np.random.Generator) -> dict:
    c = golden_models.cfg()
    variant = golden_models.CONTEXT["variant"]
    vae, voc = prior_models()
    v64, w64 = copy.deepcopy(vae).double(), copy.deepcopy(voc).double()
    sf = vae.config.scaling_factor

    # --- schedule: t in the middle of a 50-step run, and diffusers' prev_timestep
    sched = scheduler()
    sched.set_timesteps(STEPS)
    t = int(sched.timesteps[STEP_INDEX])
    t_prev = t - sched.config.num_train_timesteps // STEPS
    ac = sched.alphas_cumprod.double()  # float32 values, float64 arithmetic from here
    a_t = float(ac[t])
    a_prev = float(ac[t_prev]) if t_prev >= 0 else float(sched.final_alpha_cumprod)

    # --- inputs
    down = 2 ** (len(c["vae"]["block_out_channels"]) - 1)
    shape = (1, c["vae"]["latent_channels"], LATENT_T[variant], c["mel_bins"] // down)
    hop = int(np.prod(c["vocoder"]["upsample_rates"]))
    wave_len = hop * LATENT_T[variant] * down - CROP
    assert wave_len % hop and wave_len > LOSS_N_FFT // 2
    z_t = f32(rng.standard_normal(shape))
    eps = f32(rng.standard_normal(shape))
    noise = f32(rng.standard_normal(shape))
    clean_latent = f32(rng.standard_normal(shape))
    gap = int(round(rng.uniform(*GAP) * wave_len))
    start = int(rng.integers(int(0.15 * wave_len), int(0.85 * wave_len) - gap + 1))
    mask = torch.ones(wave_len, dtype=torch.float32)
    mask[start:start + gap] = 0.0
    with torch.no_grad():
        clean = prior_decode(v64, w64, clean_latent.double(), wave_len)[0]
    y = (mask.double() * clean).float()  # float32-rounded measurement

    melspec = golden_dsp.loss_melspec(LOSS_SR, LOSS_N_FFT, LOSS_HOP, LOSS_N_MELS)
    db = golden_dsp.to_db()
    mel_y = db(melspec(y.double()[None]))
    mask64 = mask.double()

    def loss_of_x0(x0, v=v64, w=w64, m=mask64, my=mel_y, spec=melspec):
        wave = prior_decode(v, w, x0, wave_len)  # (1, wave_len)
        return torch.linalg.norm((db(spec(m * wave)) - my).reshape(-1))

    def x0_of(z, e, a):
        return (z - math.sqrt(1 - a) * e) / math.sqrt(a)

    z64, e64, n64 = z_t.double(), eps.double(), noise.double()

    # --- loss and gradients (eps held constant)
    zz = z64.clone().requires_grad_(True)
    with LeakyReluMargin() as kinks:
        x0 = x0_of(zz, e64, a_t)
        loss = loss_of_x0(x0)
    (g_z,) = torch.autograd.grad(loss, zz)  # dL/dz_t
    x0 = x0.detach()
    xx = x0.clone().requires_grad_(True)
    (g_x0,) = torch.autograd.grad(loss_of_x0(xx), xx)  # dL/dx0
    assert torch.allclose(g_z, g_x0 / math.sqrt(a_t), rtol=1e-10, atol=1e-14 * float(g_z.abs().max()))
    loss = loss.detach()

    # the mel powers of A(wave) and of y: exact zeros (frames inside the gap) or well
    # above the 1e-10 floor, so no power sits near the clamp of AmplitudeToDB
    with torch.no_grad():
        for name, wav in (("A(wave)", mask64 * prior_decode(v64, w64, x0, wave_len)),
                          ("y", y.double()[None])):
            p = melspec(wav)
            nz = p[p != 0]
            assert float(nz.min()) > 1e4 * POWER_FLOOR, f"guidance: {name} mel power near 1e-10"
            STATS[f"guidance: mel power of {name}: exact zeros, min nonzero"] = (
                int((p == 0).sum()), float(nz.min()))

    # --- DGG (eta 1): DDIM with the noise replaced by slerp(n, -g_hat, gamma)
    g = g_z / 1000.0
    var = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev)
    std = DGG_ETA * math.sqrt(var)
    g_hat = g / (g.norm() + 1e-8) * n64.norm()
    mixed, cos = slerp(n64, -g_hat, GAMMA)
    dgg_prev = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - std ** 2) * e64 + std * mixed
    res = sched.step(e64, t, z64, eta=DGG_ETA, variance_noise=mixed)
    ref, ref_x0 = res.prev_sample, res.pred_original_sample
    # diffusers computes the scalar coefficients from float32 alphas_cumprod in float32
    d_prev = float((ref - dgg_prev).abs().max())
    assert d_prev < 1e-6 * float(dgg_prev.abs().max()), d_prev
    assert float((ref_x0 - x0).abs().max()) < 1e-6 * float(x0.abs().max())
    # the mixed noise keeps the norm of n (up to the 1e-8 in g_hat's normalisation)
    assert abs(float(mixed.norm() / n64.norm()) - 1) < 1e-8 / float(g.norm()) + 1e-12

    # --- MPGD (eta 0): gradient step on x0, DDIM update with eps recomputed from x0'
    x0_upd = x0 - MPGD_RATE * g_x0
    eps_upd = (z64 - math.sqrt(a_t) * x0_upd) / math.sqrt(1 - a_t)
    mpgd_prev = math.sqrt(a_prev) * x0_upd + math.sqrt(1 - a_prev) * eps_upd

    # --- DPS (eta 0): DDIM update minus rate * dL/dz_t
    ddim_prev = math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev) * e64
    ref0 = sched.step(e64, t, z64, eta=0.0).prev_sample
    assert float((ref0 - ddim_prev).abs().max()) < 1e-6 * float(ddim_prev.abs().max())
    dps_prev = ddim_prev - DPS_RATE * g_z

    # float32 run of the loss and gradient, for scale
    z32 = z_t.clone().requires_grad_(True)
    l32 = loss_of_x0(x0_of(z32, eps, a_t), vae, voc, mask, mel_y.float(),
                     golden_dsp.loss_melspec(LOSS_SR, LOSS_N_FFT, LOSS_HOP, LOSS_N_MELS).float())
    (g32,) = torch.autograd.grad(l32, z32)

    frames = 1 + wave_len // LOSS_HOP
    STATS["guidance: t, t_prev, a_t, a_prev, std (eta 1)"] = (t, t_prev, round(a_t, 6),
                                                              round(a_prev, 6), round(std, 6))
    STATS["guidance: wave_len, gap [start, end), gap fraction, loss-mel frames"] = (
        wave_len, (start, start + gap), round(gap / wave_len, 3), frames)
    STATS["guidance: loss L"] = float(loss)
    STATS["guidance: |dL/dz_t|, max|dL/dz_t|"] = (float(g_z.norm()), float(g_z.abs().max()))
    STATS["guidance: |dL/dx0|"] = float(g_x0.norm())
    STATS["guidance: dgg cos(theta), theta"] = (cos, math.acos(cos))
    STATS["guidance: dgg rel. change of prev_sample by the guidance (vs n)"] = golden_models.rel(
        dgg_prev, math.sqrt(a_prev) * x0 + math.sqrt(1 - a_prev - std ** 2) * e64 + std * n64)
    STATS["guidance: dgg max|diffusers step (f32 coefficients) - f64|"] = d_prev
    STATS["guidance: mpgd rel. change of prev_sample (vs plain DDIM)"] = golden_models.rel(
        mpgd_prev, ddim_prev)
    STATS["guidance: dps rel. change of prev_sample (vs plain DDIM)"] = golden_models.rel(
        dps_prev, ddim_prev)
    STATS["guidance: f32 loss rel. err, grad max|f32 - f64|"] = (
        abs(float(l32.detach()) / float(loss) - 1), float((g32.double() - g_z).abs().max()))
    STATS["guidance: min |leaky_relu input| (f64), of n"] = (kinks.min, kinks.n)
    STATS["guidance: VAE scaling_factor"] = sf

    step = {
        "dgg.step.z_t": z_t,
        "dgg.step.t": scalar(t),
        "dgg.step.t_prev": scalar(t_prev),
        "dgg.step.eps": eps,
        "dgg.step.noise": noise,
        "dgg.step.wave_len": scalar(wave_len),
        "dgg.step.mask": mask,
        "dgg.step.y": y,
        "dgg.step.gamma": scalar(GAMMA),
        "dgg.step.eta": scalar(DGG_ETA),
        "dgg.step.n_fft": scalar(LOSS_N_FFT),
        "dgg.step.hop": scalar(LOSS_HOP),
        "dgg.step.n_mels": scalar(LOSS_N_MELS),
        "dgg.step.sample_rate": scalar(LOSS_SR),
        "dgg.step.pred_original_sample": x0,
        "dgg.step.loss": loss.reshape(1),
        "dgg.step.grad": g,
        "dgg.step.mixed": mixed,
        "dgg.step.prev_sample": dgg_prev,
        "mpgd.step.rate": scalar(MPGD_RATE),
        "mpgd.step.eta": scalar(0.0),
        "mpgd.step.pred_original_sample": x0,
        "mpgd.step.loss": loss.reshape(1),
        "mpgd.step.grad_x0": g_x0,
        "mpgd.step.x0_updated": x0_upd,
        "mpgd.step.prev_sample": mpgd_prev,
        "dps.step.rate": scalar(DPS_RATE),
        "dps.step.eta": scalar(0.0),
        "dps.step.pred_original_sample": x0,
        "dps.step.loss": loss.reshape(1),
        "dps.step.grad": g_z,
        "dps.step.ddim_prev_sample": ddim_prev,
        "dps.step.prev_sample": dps_prev,
    }
    return {k: v.detach() for k, v in step.items()}


SECTIONS = {
    "ddim": section_ddim,
    "guidance": section_guidance,
}
