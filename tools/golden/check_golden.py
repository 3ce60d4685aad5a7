#!/usr/bin/env python3
"""Independent check of golden.safetensors: recomputes every DSP tensor with plain
numpy (own STFT, own HTK filterbank, librosa only for the Slaney basis) and checks
the gradients by central finite differences at random samples.

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

for k, v in G.items():
    assert v.dtype == np.float32 and v.flags.c_contiguous, k
print("FAILED: " + ", ".join(failures) if failures else "all checks passed")
sys.exit(1 if failures else 0)
