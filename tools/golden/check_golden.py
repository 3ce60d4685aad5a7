#!/usr/bin/env python3
"""Independent check of golden.safetensors: recomputes every DSP tensor with plain
numpy (own STFT, own HTK filterbank, librosa only for the Slaney basis) and checks
the gradients by central finite differences at random samples. The model tensors
(unet, vae, voc, prior) are recomputed in float64 from the saved model dirs, and
vocoder_bin/ is compared with vocoder/. The text tensors are recomputed from the prompts
in text_prompts.json with the raw tokenizer.json files (`tokenizers`), the reloaded
text models in float64 and an own projection / generation loop. The sampler-step tensors
(ddim, dgg / mpgd / dps) are recomputed with numpy from the stored inputs (own schedule,
own slerp, own loss mel through the reloaded float64 VAE and vocoder), and the loss
gradients are checked by central finite differences.

    tools/golden/.venv/bin/python tools/golden/check_golden.py [DIR]
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np
from safetensors.numpy import load_file

DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else \
    Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "golden"
G = load_file(str(DIR / "golden.safetensors"))
f64 = lambda k: G[k].astype(np.float64)  # noqa: E731
failures = []


def check(name, got, want, rtol, atol):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, (name, got.shape, want.shape)
    err = np.abs(got - want) - (atol + rtol * np.abs(want))
    worst = float(np.max(np.abs(got - want)))
    ok = bool(np.all(err <= 0))
    print(f"{'ok ' if ok else 'BAD'} {name:34s} max abs err {worst:.3g}")
    if not ok:
        failures.append(name)


def stft_mag(x, n_fft, hop):
    pad = n_fft // 2
    xp = np.pad(x, pad, mode="reflect")
    n_frames = 1 + len(x) // hop
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    idx = np.arange(n_fft)[None, :] + hop * np.arange(n_frames)[:, None]
    return np.abs(np.fft.rfft(xp[idx] * w, axis=1)).T  # (freq, frames)


def htk_fb(sr, n_fft, n_mels, f_min=0.0, f_max=None):
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale='htk'): (n_mels, n_freqs)."""
    f_max = sr / 2 if f_max is None else f_max
    freqs = np.linspace(0, sr // 2, n_fft // 2 + 1)
    hz2mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    mel2hz = lambda m: 700.0 * (10.0 ** (m / 2595.0) - 1.0)  # noqa: E731
    f_pts = mel2hz(np.linspace(hz2mel(f_min), hz2mel(f_max), n_mels + 2))
    f_diff = np.diff(f_pts)
    slopes = f_pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return np.maximum(0.0, np.minimum(down, up)).T


def fd_grad(fn, x, idx, h=1e-6):
    out = []
    for i in idx:
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        out.append((fn(xp).sum() - fn(xm).sum()) / (2 * h))
    return np.array(out)


rng = np.random.default_rng(1234)

# --- mel (VAE domain) ---------------------------------------------------------
wav = f64("mel.wav")
basis = librosa.filters.mel(sr=16000, n_fft=1024, n_mels=64, fmin=0, fmax=8000, dtype=np.float64)
check("mel.basis", G["mel.basis"], basis, 1e-6, 1e-9)
logmel = lambda x: np.log(np.maximum(basis @ stft_mag(x, 1024, 160), 1e-5)).T  # noqa: E731
check("stft.mag", G["stft.mag"], stft_mag(wav, 1024, 160), 1e-4, 1e-4)
check("mel.logmel", G["mel.logmel"], logmel(wav), 1e-5, 1e-4)
idx = rng.choice(len(wav), 12, replace=False)
check("mel.grad_wav_of_sum (fd)", G["mel.grad_wav_of_sum"][idx], fd_grad(logmel, wav, idx), 1e-4, 1e-3)

# --- lossmel (dB, clamped) ----------------------------------------------------
def lossmel(x, sr=16000, n_fft=1024, hop=160, n_mels=64, clamp=True):
    p = htk_fb(sr, n_fft, n_mels) @ stft_mag(x, n_fft, hop) ** 2
    db = 10.0 * np.log10(np.maximum(p, 1e-10))
    return (np.clip(db, -80, 80) if clamp else db)[None]


wav = f64("lossmel.wav")
check("lossmel.melspec_db", G["lossmel.melspec_db"], lossmel(wav), 1e-5, 1e-3)
g = G["lossmel.grad_wav_of_sum"]
zeros = np.flatnonzero(wav == 0.0)
print(f"    lossmel: {len(zeros)} exact zeros [{zeros[0]}, {zeros[-1]}], "
      f"{int(np.all(G['lossmel.melspec_db'][0] == -80, axis=0).sum())} frames all -80 dB, "
      f"{int((g == 0).sum())} samples with gradient exactly 0, NaN: {bool(np.isnan(g).any())}")
idx = np.concatenate([rng.choice(len(wav), 10, replace=False), zeros[[0, 50, -50, -1]]])
check("lossmel.grad_wav_of_sum (fd)", g[idx], fd_grad(lossmel, wav, idx), 1e-4, 1e-3)

# --- lossmel_small (no clamp) -------------------------------------------------
sr, n_fft, hop, n_mels = (int(G[f"lossmel_small.{k}"][0]) for k in ("sample_rate", "n_fft", "hop", "n_mels"))
small = lambda x: lossmel(x, sr, n_fft, hop, n_mels, clamp=False)  # noqa: E731
wav = f64("lossmel_small.wav")
check("lossmel_small.melspec_db", G["lossmel_small.melspec_db"], small(wav), 1e-5, 1e-4)
idx = rng.choice(len(wav), 12, replace=False)
check("lossmel_small.grad_wav_of_sum (fd)", G["lossmel_small.grad_wav_of_sum"][idx],
      fd_grad(small, wav, idx), 1e-4, 1e-3)

# --- phasemel ------------------------------------------------------------------
fb = htk_fb(16000, 1024, 64)
phasemel = lambda x: np.clip(fb @ stft_mag(x, 1024, 160), -80, 80)[None]  # noqa: E731
wav = f64("phasemel.wav")
check("phasemel.mel", G["phasemel.mel"], phasemel(wav), 1e-5, 1e-4)
print(f"    phasemel: {int((G['phasemel.mel'] == 80).sum())} bins clamped at +80")
idx = rng.choice(len(wav), 12, replace=False)
check("phasemel.grad_wav_of_sum (fd)", G["phasemel.grad_wav_of_sum"][idx],
      fd_grad(phasemel, wav, idx), 1e-4, 1e-3)

# --- lsd -----------------------------------------------------------------------
lr = np.log10(stft_mag(f64("lsd.ref"), 1024, 160) + 1e-10)
le = np.log10(stft_mag(f64("lsd.est"), 1024, 160) + 1e-10)
check("lsd.value", G["lsd.value"], [np.mean(np.sqrt(np.mean((lr - le) ** 2, axis=0)))], 1e-5, 0)

# --- scheduler (independent numpy DDIM) ---------------------------------------
if "sched.alphas_cumprod" in G:
    betas = np.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000) ** 2  # scaled_linear
    ac = np.cumprod(1.0 - betas)
    check("sched.alphas_cumprod", G["sched.alphas_cumprod"], ac, 1e-5, 1e-8)
    check("sched.timesteps_50", G["sched.timesteps_50"], np.arange(50)[::-1] * 20 + 1, 0, 0)
    t = int(G["sched.step.t"][0])
    a_t, a_p = ac[t], (ac[t - 20] if t - 20 >= 0 else ac[0])  # set_alpha_to_one false
    x, e = f64("sched.step.sample"), f64("sched.step.model_output")
    x0 = (x - np.sqrt(1 - a_t) * e) / np.sqrt(a_t)
    check("sched.step.prev_sample", G["sched.step.prev_sample"],
          np.sqrt(a_p) * x0 + np.sqrt(1 - a_p) * e, 1e-5, 1e-5)

# --- tiny models: reload the saved dirs, recompute in float64, finite differences
if (DIR / "unet" / "config.json").is_file():
    import torch
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from golden_models import unet_class  # noqa: E402
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan

    T = lambda k: torch.from_numpy(G[k]).double()  # noqa: E731
    unet = unet_class().from_pretrained(str(DIR / "unet")).double().eval()
    vae = AutoencoderKL.from_pretrained(str(DIR / "vae")).double().eval()
    voc = SpeechT5HifiGan.from_pretrained(str(DIR / "vocoder")).double().eval()
    with torch.no_grad():
        for case in ("b1", "b2", "odd"):
            kw = {k: T(f"unet.{case}.{k}") for k in
                  ("encoder_hidden_states", "encoder_hidden_states_1", "encoder_attention_mask_1")
                  if f"unet.{case}.{k}" in G}
            y = unet(T(f"unet.{case}.sample"), T(f"unet.{case}.timestep").long(), **kw).sample
            check(f"unet.{case}.out (reload)", G[f"unet.{case}.out"], y.numpy(), 1e-5, 1e-5)
        dist = vae.encode(T("vae.encode.in")).latent_dist
        check("vae.encode.mean (reload)", G["vae.encode.mean"], dist.mean.numpy(), 1e-5, 1e-5)
        check("vae.encode.std (reload)", G["vae.encode.std"], dist.std.numpy(), 1e-5, 1e-5)
        fns = [("vae.decode", lambda z: vae.decode(z).sample), ("voc", voc)]
        if "prior.decode.in" in G:
            # AudioLDM2Pipeline: 1/scaling_factor, VAE decode, squeeze(1), vocoder, crop
            samples = int(G["prior.decode.samples"][0])
            sf = vae.config.scaling_factor
            assert sf != 1.0, "prior: VAE scaling_factor is 1"
            print(f"    prior: scaling_factor {sf}, crop {samples} samples")
            fns.append(("prior.decode",
                        lambda z: voc(vae.decode(1 / sf * z).sample.squeeze(1))[:, :samples]))
        for name, fn in fns:
            x = T(f"{name}.in")
            check(f"{name}.out (reload)", G[f"{name}.out"], fn(x).numpy(), 1e-5, 1e-5)
            cot = T(f"{name}.cotangent")
            flat = rng.choice(x.numel(), 8, replace=False)
            want = G[f"{name}.grad_in"].reshape(-1)[flat]

            def fd_at(i, h):
                xp, xm = x.clone().view(-1), x.clone().view(-1)
                xp[i] += h
                xm[i] -= h
                return float(((fn(xp.view_as(x)) - fn(xm.view_as(x))) * cot).sum() / (2 * h))

            fd, small = [], 0
            for i, w in zip(flat, want):
                d = fd_at(i, 1e-6)
                if abs(d - w) > 1e-4 + 1e-4 * abs(w):
                    # a +-1e-6 step can cross a leaky-ReLU kink (the vocoder has
                    # ~1e5 activations per item, the nearest often within 1e-6 of 0);
                    # retry with a step 100x smaller (float64 noise is still ~1e-6)
                    d, small = fd_at(i, 1e-8), small + 1
                fd.append(d)
            check(f"{name}.grad_in (fd)", want, fd, 1e-4, 1e-4)
            if small:
                print(f"    {name}.grad_in: {small} of 8 entries needed the 1e-8 step "
                      f"(kink crossed at 1e-6)")

# --- ddim: the inference schedules (own numpy schedule) ------------------------
if "ddim.alphas_cumprod" in G:
    betas = np.linspace(0.0015 ** 0.5, 0.0195 ** 0.5, 1000) ** 2  # scaled_linear
    check("ddim.alphas_cumprod", G["ddim.alphas_cumprod"], np.cumprod(1.0 - betas), 1e-5, 1e-8)
    for n in (500, 200, 50):  # "leading", steps_offset 1
        check(f"ddim.timesteps_{n}", G[f"ddim.timesteps_{n}"],
              np.arange(n)[::-1] * (1000 // n) + 1, 0, 0)

# --- guidance: one DGG / MPGD / DPS step, recomputed from the stored inputs ------
if "dgg.step.z_t" in G:
    import torch
    from diffusers import AutoencoderKL
    from transformers import SpeechT5HifiGan

    S = lambda k: float(G[k][0])  # noqa: E731
    vae = AutoencoderKL.from_pretrained(str(DIR / "vae")).double().eval()
    voc = SpeechT5HifiGan.from_pretrained(str(DIR / "vocoder")).double().eval()
    sf = vae.config.scaling_factor
    t, t_prev, wave_len = int(S("dgg.step.t")), int(S("dgg.step.t_prev")), int(S("dgg.step.wave_len"))
    assert t in G["ddim.timesteps_50"] and t_prev == t - 1000 // 50, (t, t_prev)
    # the scheduler's float32 alphas_cumprod (checked above), in float64 arithmetic
    ac = f64("ddim.alphas_cumprod")
    a_t, a_p = ac[t], (ac[t_prev] if t_prev >= 0 else ac[0])  # set_alpha_to_one false
    z, e, n = f64("dgg.step.z_t"), f64("dgg.step.eps"), f64("dgg.step.noise")
    mask, y = f64("dgg.step.mask"), f64("dgg.step.y")
    gap = np.flatnonzero(mask == 0)
    ok = (set(np.unique(mask)) == {0.0, 1.0} and len(mask) == len(y) == wave_len
          and gap[-1] - gap[0] + 1 == len(gap) and np.all(y[gap] == 0))
    print(f"{'ok ' if ok else 'BAD'} dgg.step.mask / y: one gap [{gap[0]}, {gap[-1] + 1}) "
          f"= {len(gap) / wave_len:.1%} of {wave_len} samples, y zero there")
    if not ok:
        failures.append("dgg.step.mask")
    sr_l, nfft_l, hop_l, mels_l = (int(S(f"dgg.step.{k}")) for k in ("sample_rate", "n_fft", "hop", "n_mels"))
    M = lambda x: lossmel(x, sr_l, nfft_l, hop_l, mels_l, clamp=False)  # noqa: E731
    My = M(y)

    def loss_x0(x0):  # own loss mel (numpy); VAE + vocoder reloaded in float64
        with torch.no_grad():
            wave = voc(vae.decode(torch.from_numpy(x0 / sf)).sample.squeeze(1))[0, :wave_len]
        return np.linalg.norm((M(mask * wave.numpy()) - My).ravel())

    x0 = (z - np.sqrt(1 - a_t) * e) / np.sqrt(a_t)
    for m in ("dgg", "mpgd", "dps"):
        check(f"{m}.step.pred_original_sample", G[f"{m}.step.pred_original_sample"], x0, 1e-5, 1e-5)
    L = loss_x0(x0)
    for m in ("dgg", "mpgd", "dps"):
        check(f"{m}.step.loss", G[f"{m}.step.loss"], [L], 1e-5, 0)
    g, gx, gz = f64("dgg.step.grad"), f64("mpgd.step.grad_x0"), f64("dps.step.grad")
    check("dps.step.grad = 1000·dgg.step.grad", gz, 1000 * g, 1e-5, 1e-5 * np.abs(gz).max())
    check("mpgd.step.grad_x0 = sqrt(a_t)·dps.grad", gx, np.sqrt(a_t) * gz, 1e-5, 1e-5 * np.abs(gx).max())

    def fd_check(name, fn, x, want, n_idx=8):
        """central differences at n_idx random entries (1e-6 step, 1e-8 where the
        1e-6 step crosses a leaky-ReLU kink of the vocoder)"""
        flat = rng.choice(x.size, n_idx, replace=False)
        tol = 1e-4 * np.abs(want).max()
        fd, small = [], 0
        for i in flat:
            def at(h):
                xp, xm = x.copy().ravel(), x.copy().ravel()
                xp[i] += h
                xm[i] -= h
                return (fn(xp.reshape(x.shape)) - fn(xm.reshape(x.shape))) / (2 * h)
            d = at(1e-6)
            w = want.ravel()[i]
            if abs(d - w) > tol + 1e-4 * abs(w):
                d, small = at(1e-8), small + 1
            fd.append(d)
        check(f"{name} (fd)", want.ravel()[flat], fd, 1e-4, tol)
        if small:
            print(f"    {name}: {small} of {n_idx} entries needed the 1e-8 step")

    # eps is held constant: z_t -> x0 -> loss; DGG differentiates L / 1000
    fd_check("dgg.step.grad", lambda zz: loss_x0((zz - np.sqrt(1 - a_t) * e) / np.sqrt(a_t)) / 1000,
             z, g)
    fd_check("mpgd.step.grad_x0", loss_x0, x0, gx)

    # DGG: DDIM eta 1 with the noise replaced by slerp(n, -g_hat, gamma)
    gamma, eta = S("dgg.step.gamma"), S("dgg.step.eta")
    var = (1 - a_p) / (1 - a_t) * (1 - a_t / a_p)
    std = eta * np.sqrt(var)
    g_hat = g / (np.linalg.norm(g) + 1e-8) * np.linalg.norm(n)
    d = -g_hat
    cos = float(np.sum(n / np.linalg.norm(n) * d / np.linalg.norm(d)))
    if abs(cos) > 0.9995:
        mixed = (1 - gamma) * n + gamma * d
    else:
        th = np.arccos(cos)
        mixed = (np.sin((1 - gamma) * th) * n + np.sin(gamma * th) * d) / np.sin(th)
    print(f"    dgg: cos theta {cos:.4f}, |mixed| / |n| = {np.linalg.norm(mixed) / np.linalg.norm(n):.9f}")
    check("dgg.step.mixed", G["dgg.step.mixed"], mixed, 1e-5, 1e-5)
    check("dgg.step.prev_sample", G["dgg.step.prev_sample"],
          np.sqrt(a_p) * x0 + np.sqrt(1 - a_p - std ** 2) * e + std * mixed, 1e-5, 1e-5)
    # MPGD: eta 0, x0' = x0 - rate·dL/dx0, DDIM update with eps recomputed from x0'
    assert S("mpgd.step.eta") == 0 and S("dps.step.eta") == 0
    x0u = x0 - S("mpgd.step.rate") * gx
    check("mpgd.step.x0_updated", G["mpgd.step.x0_updated"], x0u, 1e-5, 1e-5)
    eu = (z - np.sqrt(a_t) * x0u) / np.sqrt(1 - a_t)
    check("mpgd.step.prev_sample", G["mpgd.step.prev_sample"],
          np.sqrt(a_p) * x0u + np.sqrt(1 - a_p) * eu, 1e-5, 1e-5)
    # DPS: eta 0 DDIM update minus rate·dL/dz_t
    ddim = np.sqrt(a_p) * x0 + np.sqrt(1 - a_p) * e
    check("dps.step.ddim_prev_sample", G["dps.step.ddim_prev_sample"], ddim, 1e-5, 1e-5)
    check("dps.step.prev_sample", G["dps.step.prev_sample"], ddim - S("dps.step.rate") * gz, 1e-5, 1e-5)

# --- vocoder_bin: the PyTorch-pickle copy of vocoder/ --------------------------
if (DIR / "vocoder_bin" / "pytorch_model.bin").is_file():
    import torch
    from safetensors.torch import load_file as load_pt

    pt = torch.load(str(DIR / "vocoder_bin" / "pytorch_model.bin"), map_location="cpu",
                    weights_only=True)
    st = load_pt(str(DIR / "vocoder" / "model.safetensors"))
    same = sorted(pt) == sorted(st) and all(
        pt[k].dtype == st[k].dtype and torch.equal(pt[k], st[k]) for k in st)
    same = same and (DIR / "vocoder_bin" / "config.json").read_bytes() == \
        (DIR / "vocoder" / "config.json").read_bytes()
    print(f"{'ok ' if same else 'BAD'} vocoder_bin == vocoder ({len(st)} tensors, config.json)")
    if not same:
        failures.append("vocoder_bin")

# --- text conditioning: tokenizer.json via `tokenizers`, models reloaded in float64 ---
if (DIR / "text_prompts.json").is_file():
    import json

    import torch
    from tokenizers import Tokenizer
    from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2ProjectionModel
    from transformers import ClapModel, GPT2Model, T5EncoderModel

    prompts = json.loads((DIR / "text_prompts.json").read_text())
    tok = Tokenizer.from_file(str(DIR / "tokenizer" / "tokenizer.json"))
    tok2 = Tokenizer.from_file(str(DIR / "tokenizer_2" / "tokenizer.json"))
    clap = ClapModel.from_pretrained(str(DIR / "text_encoder")).double().eval()
    t5 = T5EncoderModel.from_pretrained(str(DIR / "text_encoder_2")).double().eval()
    proj = AudioLDM2ProjectionModel.from_pretrained(str(DIR / "projection_model")).double().eval()
    gpt = GPT2Model.from_pretrained(str(DIR / "language_model")).double().eval()
    T = lambda k: torch.from_numpy(G[k]).double()  # noqa: E731

    def encode(text):
        """CLAP (unpadded ids), T5 states, projected + mask (numpy concat), 8 generated."""
        ci = torch.tensor([tok.encode(text).ids])
        ti = torch.tensor([tok2.encode(text).ids])
        feat = clap.get_text_features(ci, attention_mask=torch.ones_like(ci)).pooler_output
        states = t5(ti, attention_mask=torch.ones_like(ti))[0]
        return ci, ti, feat[:, None], states

    def project(feat, states, mask):
        p = proj.projection(feat)
        p1 = proj.projection_1(states)
        one = lambda e: e[None, None]  # noqa: E731
        x = torch.cat([one(proj.sos_embed), p, one(proj.eos_embed),
                       one(proj.sos_embed_1), p1, one(proj.eos_embed_1)], dim=1)
        m = torch.cat([torch.ones(1, 3), torch.ones(1, 1), mask, torch.ones(1, 1)], dim=1)
        return x, m.double()

    def generate(x, m, n=8):  # whole sequence each step, positions 0..L-1, no cache
        for _ in range(n):
            h = gpt(inputs_embeds=x, attention_mask=m, use_cache=False).last_hidden_state
            x, m = torch.cat([x, h[:, -1:]], 1), torch.cat([m, torch.ones(1, 1).double()], 1)
        return x[:, -n:]

    with torch.no_grad():
        for i, text in enumerate(prompts):
            pre = f"text.p{i}"
            ci, ti, feat, states = encode(text)
            check(f"{pre}.clap_ids (tokenizer.json)", G[f"{pre}.clap_ids"], ci[0].numpy(), 0, 0)
            check(f"{pre}.t5_ids (tokenizer.json)", G[f"{pre}.t5_ids"], ti[0].numpy(), 0, 0)
            check(f"{pre}.clap_features (unpadded)", G[f"{pre}.clap_features"], feat.numpy(),
                  1e-5, 1e-6)
            check(f"{pre}.t5_states", G[f"{pre}.t5_states"], states.numpy(), 1e-5, 1e-5)
            x, m = project(T(f"{pre}.clap_features"), T(f"{pre}.t5_states"), T(f"{pre}.t5_mask"))
            check(f"{pre}.projected", G[f"{pre}.projected"], x.numpy(), 1e-5, 1e-5)
            check(f"{pre}.projected_mask", G[f"{pre}.projected_mask"], m.numpy(), 0, 0)
            check(f"{pre}.generated", G[f"{pre}.generated"],
                  generate(T(f"{pre}.projected"), T(f"{pre}.projected_mask")).numpy(), 1e-5, 1e-5)
        # CFG: row 0 = default negative prompt "" (T5 padded to row 1's length), row 1 = p1
        L = G["text.cfg.prompt_embeds"].shape[1]
        ids = tok2.encode("").ids
        ti = torch.tensor([ids + [0] * (L - len(ids))])
        tm = (torch.arange(L) < len(ids)).long()[None]
        neg = t5(ti, attention_mask=tm)[0]
        _, _, nfeat, _ = encode("")
        want = np.concatenate([neg.numpy(), G["text.p1.t5_states"]])
        check("text.cfg.prompt_embeds", G["text.cfg.prompt_embeds"], want, 1e-5, 1e-5)
        check("text.cfg.attention_mask", G["text.cfg.attention_mask"],
              np.concatenate([tm.numpy(), G["text.p1.t5_mask"]]), 0, 0)
        x, m = project(nfeat, neg, tm.double())
        want = np.concatenate([generate(x, m).numpy(), G["text.p1.generated"]])
        check("text.cfg.generated", G["text.cfg.generated"], want, 1e-5, 1e-5)

for k, v in G.items():
    assert v.dtype == np.float32 and v.flags.c_contiguous, k
print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
