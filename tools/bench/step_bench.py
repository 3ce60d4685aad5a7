#!/usr/bin/env python3
"""PyTorch reference for `dgg-restore bench step`: one full DGG step at full size (the
AudioLDM2-music UNet, VAE and vocoder with RANDOM weights), fp32 on the CPU, timed whole
and stage by stage, with the peak resident memory.

    tools/golden/.venv/bin/python tools/bench/step_bench.py [--steps 3] [--threads N]
        [--configs DIR] [--json PATH]

The step is DESIGN.md §2 on a 5.12 s inpainting window (a 440 Hz tone, the middle fifth
silenced; latent (1, 8, 128, 16)), exactly as `dgg-restore bench step` runs it:

    eps  = unet(z_t, t)                       (no gradient)
    x0   = (z_t - sqrt(1 - a_t) eps) / sqrt(a_t)
    L    = || dB(mel(mask * vocoder(vae.decode(x0 / sf)))) - dB(mel(y)) ||_F
    g    = d(L / 1000) / d x0 / sqrt(a_t)     (input gradients only: weights are frozen)
    z    = DDIM mean + std * slerp(n, -g_hat, 0.08)

`step` times that as one autograd graph. The stages are timed on the same computation with
the graph cut at the stage boundaries (each cut tensor detached and re-attached, the
backward run stage by stage in reverse): `unet_forward`, `vae_decode_grad` (decode + its
input gradient), `vocoder_grad` (vocoder + its input gradient), `loss` (loss-space mel,
norm, and their gradient) and `update` (the slerp and the DDIM update). One warm-up step
runs first; then `--steps` timed steps of each kind; medians are reported. The peak RSS is
the process's high-water mark over the timed whole steps (models included), as
`bench step` reports its own.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torchaudio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_bench import (DEFAULT_CONFIGS, GPT2_TOKENS, GPT2_WIDTH, LATENT, PeakRss,  # noqa: E402
                         REPO_ROOT, T5_TOKENS, T5_WIDTH, build_unet, build_vae, build_vocoder,
                         frozen)

CLIP_SECONDS = 5.12
SAMPLE_RATE = 16000
SAMPLES = 81920
TIMESTEP = 500
GAMMA = 0.08
STAGES = ["unet_forward", "vae_decode_grad", "vocoder_grad", "loss", "update"]


def loss_mel():
    """The paper's loss-space mel (DESIGN.md §2 step 4), dB without clamp (inpainting)."""
    spec = torchaudio.transforms.MelSpectrogram(
        sample_rate=SAMPLE_RATE, n_fft=1024, win_length=1024, hop_length=160, n_mels=64,
        power=2.0, norm=None, mel_scale="htk", center=True, pad_mode="reflect",
        window_fn=torch.hann_window)
    db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)
    return lambda wave: db(spec(wave))


def slerp(n, d, gamma):
    cos = float((n / n.norm() * (d / d.norm())).sum())
    if abs(cos) > 0.9995:
        return (1 - gamma) * n + gamma * d
    theta = math.acos(cos)
    return (math.sin((1 - gamma) * theta) * n + math.sin(gamma * theta) * d) / math.sin(theta)


class Step:
    def __init__(self, configs: Path):
        from diffusers import DDIMScheduler

        self.unet = frozen(build_unet(configs))
        self.vae = frozen(build_vae(configs))
        self.voc = frozen(build_vocoder(configs))
        sched = DDIMScheduler.from_pretrained(str(configs / "scheduler"))
        ac = sched.alphas_cumprod.double()
        step = sched.config.num_train_timesteps // 100
        self.a_t, self.a_prev = float(ac[TIMESTEP]), float(ac[TIMESTEP - step])
        var = (1 - self.a_prev) / (1 - self.a_t) * (1 - self.a_t / self.a_prev)
        self.std = math.sqrt(var)
        self.sf = self.vae.config.scaling_factor
        g = torch.Generator().manual_seed(0)
        self.z = torch.randn(*LATENT, generator=g)
        self.noise = torch.randn(*LATENT, generator=g)
        self.t = torch.tensor([TIMESTEP], dtype=torch.long)
        self.ehs = torch.randn(1, GPT2_TOKENS, GPT2_WIDTH, generator=g)
        self.ehs1 = torch.randn(1, T5_TOKENS, T5_WIDTH, generator=g)
        self.mask1 = torch.ones(1, T5_TOKENS)
        n = torch.arange(SAMPLES, dtype=torch.float32)
        clean = 0.3 * torch.sin(n * 2 * math.pi * 440 / SAMPLE_RATE)
        self.mask = torch.ones(SAMPLES)
        self.mask[2 * SAMPLES // 5:3 * SAMPLES // 5] = 0
        self.mel = loss_mel()
        with torch.no_grad():
            self.target = self.mel((clean * self.mask)[None])

    def eps(self):
        with torch.no_grad():
            return self.unet(self.z, self.t, encoder_hidden_states=self.ehs,
                             encoder_hidden_states_1=self.ehs1,
                             encoder_attention_mask_1=self.mask1).sample

    def x0(self, eps):
        return (self.z - math.sqrt(1 - self.a_t) * eps) / math.sqrt(self.a_t)

    def loss(self, wave):
        return torch.linalg.norm((self.mel(self.mask * wave[:, :SAMPLES]) - self.target).reshape(-1))

    def update(self, eps, x0, grad_x0):
        with torch.no_grad():
            g = grad_x0 / (1000.0 * math.sqrt(self.a_t))
            g_hat = g / (g.norm() + 1e-8) * self.noise.norm()
            mixed = slerp(self.noise, -g_hat, GAMMA)
            mean = math.sqrt(self.a_prev) * x0 + math.sqrt(1 - self.a_prev - self.std ** 2) * eps
            return mean + self.std * mixed

    def whole(self):
        eps = self.eps()
        x0 = self.x0(eps).requires_grad_(True)
        mel = self.vae.decode(x0 / self.sf).sample.squeeze(1)
        self.loss(self.voc(mel)).backward()
        return self.update(eps, x0.detach(), x0.grad)

    def staged(self) -> dict:
        t = [time.perf_counter()]
        eps = self.eps()
        t.append(time.perf_counter())
        x0 = self.x0(eps).requires_grad_(True)
        mel = self.vae.decode(x0 / self.sf).sample.squeeze(1)
        t.append(time.perf_counter())
        mel_cut = mel.detach().requires_grad_(True)
        wave = self.voc(mel_cut)
        t.append(time.perf_counter())
        wave_cut = wave.detach().requires_grad_(True)
        self.loss(wave_cut).backward()
        t.append(time.perf_counter())
        wave.backward(wave_cut.grad)
        t.append(time.perf_counter())
        mel.backward(mel_cut.grad)
        t.append(time.perf_counter())
        self.update(eps, x0.detach(), x0.grad)
        t.append(time.perf_counter())
        d = [b - a for a, b in zip(t, t[1:])]
        return {"unet_forward": d[0], "vae_decode_grad": d[1] + d[5], "vocoder_grad": d[2] + d[4],
                "loss": d[3], "update": d[6]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=Path, default=DEFAULT_CONFIGS,
                    help="dir with {unet,vae,vocoder}/config.json and scheduler/ (default the "
                         "full-size configs in tools/bench/audioldm2-music)")
    ap.add_argument("--steps", type=int, default=3, help="timed steps of each kind (default 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default os.cpu_count())")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.steps < 1:
        ap.error("--steps must be >= 1")
    configs = (args.configs if args.configs.is_absolute() else REPO_ROOT / args.configs).resolve()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    rss = PeakRss()
    print(f"torch {torch.__version__}, {threads} threads, fp32 CPU ({platform.machine()}), "
          f"configs {configs}; {args.steps} timed steps after one warm-up", flush=True)

    step = Step(configs)
    step.whole()  # warm-up
    rss.reset()
    whole = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step.whole()
        whole.append(time.perf_counter() - t0)
    peak = rss.read()
    staged = [step.staged() for _ in range(args.steps)]
    stages = {s: {"median_s": statistics.median(r[s] for r in staged), "runs_s": [r[s] for r in staged]}
              for s in STAGES}

    print(f"{'step':22s} median {statistics.median(whole):8.3f} s  runs "
          f"{', '.join(f'{t:.3f}' for t in whole)}  peak RSS {peak:8.1f} MB")
    for s, r in stages.items():
        print(f"  {s:20s} median {r['median_s']:8.3f} s  runs {', '.join(f'{t:.3f}' for t in r['runs_s'])}")
    if args.json:
        doc = {
            "torch": torch.__version__,
            "threads": threads,
            "steps": args.steps,
            "clip_seconds": CLIP_SECONDS,
            "step": {"median_s": statistics.median(whole), "runs_s": whole},
            "stages": stages,
            "peak_rss_mb": peak,
            "peak_rss_method": rss.method,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
