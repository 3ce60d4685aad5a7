#!/usr/bin/env python3
"""PyTorch reference benchmark of the full-size AudioLDM2-music diffusion core (UNet,
VAE decoder, HiFi-GAN vocoder) with RANDOM weights, fp32 on the CPU.

    tools/golden/.venv/bin/python tools/bench/model_bench.py [--configs DIR]
        [--repeats 3] [--threads N] [--only STAGE...] [--json PATH]

The models are built from the configs in DIR/{unet,vae,vocoder}/config.json (default
tools/bench/audioldm2-music, the full-size configs) with their default random init:
the point is timing, not output values. Parameters are frozen: the backward stages
compute the gradient w.r.t. the input only (latent / mel). Shapes are those of a 5.12 s clip at 16 kHz
(512 mel frames, 64 bins; latent 128 x 16). Each stage is run --repeats times; the
median wall time (time.perf_counter) and the peak resident memory of the stage are
reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIGS = REPO_ROOT / "tools" / "bench" / "audioldm2-music"

CLIP_SECONDS = 5.12
MEL_FRAMES = 512  # 5.12 s * 16000 / 160 (vocoder hop)
MEL_BINS = 64
LATENT = (1, 8, 128, 16)  # VAE downsamples time and frequency by 4
GPT2_TOKENS, GPT2_WIDTH = 8, 768
T5_TOKENS, T5_WIDTH = 1, 1024
TIMESTEP = 500

STAGES = ["unet_forward", "vae_decode", "vae_decode_backward", "vocoder", "vocoder_backward"]
STAGE_MODEL = {"unet_forward": "unet", "vae_decode": "vae", "vae_decode_backward": "vae",
               "vocoder": "vocoder", "vocoder_backward": "vocoder"}


# ---------------------------------------------------------------------------
# peak RSS per stage
# ---------------------------------------------------------------------------
class PeakRss:
    """Peak resident set size of one stage. Linux: write "5" to /proc/self/clear_refs
    (resets VmHWM to the current RSS) before the stage and read VmHWM from
    /proc/self/status after it. Fallback: getrusage's ru_maxrss, which is process-wide
    and never resets (so a stage can only show the maximum of itself and everything
    before it)."""

    def __init__(self):
        self.method = "VmHWM"
        try:
            self.reset()
            self.read()
        except OSError:
            self.method = "ru_maxrss"

    def reset(self) -> None:
        if self.method == "VmHWM":
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")

    def read(self) -> float:
        """MiB."""
        if self.method == "VmHWM":
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024.0  # kB
            raise OSError("no VmHWM in /proc/self/status")
        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r / (1024.0 * 1024.0) if sys.platform == "darwin" else r / 1024.0  # bytes / kB


# ---------------------------------------------------------------------------
# models (random init from the configs)
# ---------------------------------------------------------------------------
def read_config(path: Path) -> dict:
    with open(path) as f:
        return json.load(f)


def build_unet(configs: Path):
    try:
        from diffusers import AudioLDM2UNet2DConditionModel
    except ImportError:  # pragma: no cover
        from diffusers.pipelines.audioldm2.modeling_audioldm2 import AudioLDM2UNet2DConditionModel
    return AudioLDM2UNet2DConditionModel.from_config(read_config(configs / "unet" / "config.json")).eval()


def build_vae(configs: Path):
    from diffusers import AutoencoderKL

    return AutoencoderKL.from_config(read_config(configs / "vae" / "config.json")).eval()


def build_vocoder(configs: Path):
    from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig

    cfg = {k: v for k, v in read_config(configs / "vocoder" / "config.json").items()
           if k not in ("model_type", "transformers_version")}
    return SpeechT5HifiGan(SpeechT5HifiGanConfig(**cfg)).eval()


def frozen(m):
    """eval mode, parameters without requires_grad: the backward stages compute the
    gradient w.r.t. the INPUT only (as restoration does), no parameter gradients."""
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def n_params(m) -> int:
    return sum(p.numel() for p in m.parameters())


# ---------------------------------------------------------------------------
# stages: each returns a zero-argument callable that runs one timed repetition
# ---------------------------------------------------------------------------
def make_stage(name: str, models: dict, configs: Path):
    g = torch.Generator().manual_seed(0)
    randn = lambda *s: torch.randn(*s, generator=g)  # noqa: E731

    if name == "unet_forward":
        if "unet" not in models:
            models["unet"] = frozen(build_unet(configs))
        unet = models["unet"]
        sample = randn(*LATENT)
        t = torch.tensor([TIMESTEP], dtype=torch.long)
        ehs = randn(1, GPT2_TOKENS, GPT2_WIDTH)
        ehs1 = randn(1, T5_TOKENS, T5_WIDTH)
        mask1 = torch.ones(1, T5_TOKENS)

        def run():
            with torch.no_grad():
                return unet(sample, t, encoder_hidden_states=ehs, encoder_hidden_states_1=ehs1,
                            encoder_attention_mask_1=mask1).sample
        return run

    if name.startswith("vae_decode"):
        if "vae" not in models:
            models["vae"] = frozen(build_vae(configs))
        vae = models["vae"]
        z0 = randn(*LATENT)
        if name == "vae_decode":
            def run():
                with torch.no_grad():
                    return vae.decode(z0).sample
            return run
        cot = randn(1, 1, MEL_FRAMES, MEL_BINS)

        def run():
            z = z0.clone().requires_grad_(True)
            out = vae.decode(z).sample
            (out * cot).sum().backward()
            return z.grad
        return run

    if name.startswith("vocoder"):
        if "vocoder" not in models:
            models["vocoder"] = frozen(build_vocoder(configs))
        voc = models["vocoder"]
        mel0 = randn(1, MEL_FRAMES, MEL_BINS) - 4.0  # (B, frames, bins), log-mel-like
        if name == "vocoder":
            def run():
                with torch.no_grad():
                    return voc(mel0)
            return run
        # output length is affine in the number of frames (transposed-conv chain):
        # find it on two short inputs instead of a full-size forward
        with torch.no_grad():
            l4, l8 = voc(mel0[:, :4]).shape[-1], voc(mel0[:, :8]).shape[-1]
        n_out = l4 + (l8 - l4) // 4 * (MEL_FRAMES - 4)
        cot = randn(1, n_out)

        def run():
            mel = mel0.clone().requires_grad_(True)
            out = voc(mel)
            (out * cot).sum().backward()
            return mel.grad
        return run

    raise ValueError(name)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", type=Path, default=DEFAULT_CONFIGS,
                    help="dir with {unet,vae,vocoder}/config.json (default "
                         "tools/bench/audioldm2-music, the full-size configs; a relative "
                         "path is resolved against the repo root)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per stage (default 3)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads (default os.cpu_count())")
    ap.add_argument("--only", nargs="+", choices=STAGES, metavar="STAGE",
                    help=f"run only these stages ({', '.join(STAGES)})")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args(argv)
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")

    configs = args.configs if args.configs.is_absolute() else REPO_ROOT / args.configs
    configs = configs.resolve()
    threads = args.threads if args.threads else (os.cpu_count() or 1)
    torch.set_num_threads(threads)
    torch.manual_seed(0)  # default random init of from_config
    stages = [s for s in STAGES if not args.only or s in args.only]

    rss = PeakRss()
    print(f"torch {torch.__version__}, {threads} threads, fp32 CPU ({platform.machine()}), "
          f"configs {configs}, repeats {args.repeats}, peak RSS via {rss.method}", flush=True)

    models: dict = {}
    params: dict = {}
    results = {}
    for i, name in enumerate(stages):
        # drop the models no later stage needs, so a stage's peak RSS holds only its own
        needed = {STAGE_MODEL[s] for s in stages[i:]}
        for k in [k for k in models if k not in needed]:
            del models[k]
        run = make_stage(name, models, configs)
        params.update({k: n_params(m) for k, m in models.items()})
        times = []
        rss.reset()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = run()
            times.append(time.perf_counter() - t0)
            del out
        peak = rss.read()
        del run
        results[name] = {"median_s": statistics.median(times), "runs_s": times, "peak_rss_mb": peak}
        print(f"  {name:22s} median {results[name]['median_s']:8.3f} s  "
              f"runs {', '.join(f'{t:.3f}' for t in times)}  peak RSS {peak:8.1f} MB", flush=True)

    print()
    print("model parameters: " + ", ".join(f"{k} {n / 1e6:.1f} M" for k, n in params.items()))
    print(f"{'stage':22s} {'median s':>10s} {'peak RSS MB':>12s}")
    for name, r in results.items():
        print(f"{name:22s} {r['median_s']:10.3f} {r['peak_rss_mb']:12.1f}")

    if args.json:
        doc = {
            "torch": torch.__version__,
            "threads": threads,
            "repeats": args.repeats,
            "clip_seconds": CLIP_SECONDS,
            "stages": results,
            "peak_rss_method": rss.method,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
