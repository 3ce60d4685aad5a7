#!/usr/bin/env python3
"""Writes tests/fixtures/paper_operators.safetensors: reference values and gradients of
the degradation operators and the LSD metric of the DGG paper's official code
(jwliao1209/DiffMusic, diffmusic/inverse_problem/operator.py and eval.py),
re-implemented here from their description, not copied.

    tools/golden/.venv/bin/python tools/golden/golden_paper.py

Standalone (not a make_golden.py section): the paper's operators differ on purpose
from this project's own loss spaces (a rectangular-window STFT for phase retrieval,
the 16 kHz mel applied to the 8 kHz signal for super-resolution, a cross-correlation
one sample longer than the input for dereverberation, a zero-padded librosa STFT with
hop 512 for LSD), and a port that wants to reproduce the paper's numbers must match
those quirks, so they get their own file.

For each seed s in SEEDS every tensor is named ``s{s}.<name>``. Everything is computed
in float64 (torchaudio modules are built under a float64 default dtype so their
filterbanks and windows are float64 too) and stored as contiguous float32; scalars
have shape [1]. The output is byte-for-byte deterministic in the pinned environment.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from golden_dsp import default_dtype  # noqa: E402

F64 = torch.float64
REPO_ROOT = Path(__file__).resolve().parents[2]
OUT_PATH = REPO_ROOT / "tests" / "fixtures" / "paper_operators.safetensors"

SEEDS = (0, 1)
SR = 16000  # the paper's rate; every module below is built for it
LEN = 8000  # 0.5 s test signals
N_FFT, HOP, WIN, N_MELS = 1024, 160, 1024, 64
SR_LOW = 8000  # super-resolution: 16 kHz -> 8 kHz
IR_LEN, IR_DECAY = 5000, 0.99  # dereverberation impulse response
DB_CLAMP = 80.0
LSD_N_FFT, LSD_HOP, LSD_EPS = 1024, 512, 1e-10  # as eval.py scores it


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def test_signal(rng: np.random.Generator) -> np.ndarray:
    """(1, LEN): 3-5 sines (50-7500 Hz, amplitude U(0.2, 1), random phase) scaled to a
    peak of 0.5, plus white noise of std 0.02 (so the peak is ~0.5). The noise keeps
    every mel band well above AmplitudeToDB's 1e-10 floor."""
    t = np.arange(LEN, dtype=np.float64) / SR
    x = np.zeros(LEN, dtype=np.float64)
    for _ in range(int(rng.integers(3, 6))):
        f = rng.uniform(50.0, 7500.0)
        a = rng.uniform(0.2, 1.0)
        ph = rng.uniform(0.0, 2.0 * np.pi)
        x += a * np.sin(2.0 * np.pi * f * t + ph)
    x *= 0.5 / np.max(np.abs(x))
    x += 0.02 * rng.standard_normal(LEN)
    return x[None]


def impulse_responses(seed: int):
    """Two random-walk responses drawn in a row from one torch Generator, as the paper's
    generate_impulse_response does at each call: the normals are drawn in float32 (the
    paper's default dtype) and only then promoted, so a port can replay them exactly."""
    g = torch.Generator().manual_seed(seed)
    normals, irs = [], []
    for _ in range(2):
        n = torch.randn(IR_LEN, generator=g, dtype=torch.float32).to(F64)
        ir = torch.cumsum(n, dim=0) * IR_DECAY
        ir = ir / ir.abs().max()
        normals.append(n)
        irs.append(ir)
    return normals, irs


# ---------------------------------------------------------------------------
# Operators (module construction follows the paper's arguments; everything else is
# torchaudio's default: periodic Hann, centred reflect padding, HTK mel, no norm)
# ---------------------------------------------------------------------------

def resampler() -> torchaudio.transforms.Resample:
    """Resample(16000, 8000) with its defaults. dtype=float64 is needed: with dtype=None
    torchaudio computes the kernel in float64 and then caches it as float32 whatever
    the default dtype (the paper's kernel); asserted equal to this one rounded."""
    r = torchaudio.transforms.Resample(SR, SR_LOW, dtype=F64)
    for dt in (torch.float32, F64):
        with default_dtype(dt):
            paper = torchaudio.transforms.Resample(SR, SR_LOW)
        assert paper.kernel.dtype == torch.float32
        assert torch.equal(paper.kernel, r.kernel.to(torch.float32))
    return r


def mel_db() -> torch.nn.Sequential:
    """The paper's loss space M: 16 kHz MelSpectrogram (power 2) then AmplitudeToDB
    (= 10·log10(max(p, 1e-10)), top_db None). The ±80 clamp is applied by the caller."""
    with default_dtype(F64):
        m = torch.nn.Sequential(
            torchaudio.transforms.MelSpectrogram(
                sample_rate=SR, n_fft=N_FFT, hop_length=HOP, win_length=WIN,
                n_mels=N_MELS, power=2.0),
            torchaudio.transforms.AmplitudeToDB(stype="power"),
        )
    return m.to(F64)


def mel_scale() -> torchaudio.transforms.MelScale:
    with default_dtype(F64):
        return torchaudio.transforms.MelScale(
            n_mels=N_MELS, sample_rate=SR, n_stft=N_FFT // 2 + 1).to(F64)


def stft_mag_rect(x: torch.Tensor) -> torch.Tensor:
    """The phase-retrieval A: |STFT| with window=None, i.e. a rectangular window of
    n_fft (torch warns about it; the paper passes none), centred, reflect padding."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*window was not provided.*")
        spec = torch.stft(x, n_fft=N_FFT, hop_length=HOP, win_length=WIN, window=None,
                          center=True, pad_mode="reflect", return_complex=True)
    return spec.abs()


def reverb(x: torch.Tensor, ir: torch.Tensor) -> torch.Tensor:
    """conv1d with padding len/2: a cross-correlation (the response is not flipped)
    with output length LEN + 2·2500 − 5000 + 1 = LEN + 1."""
    return torch.nn.functional.conv1d(
        x.unsqueeze(1), ir.view(1, 1, -1), padding=ir.numel() // 2).squeeze(1)


def clamp80(t: torch.Tensor) -> torch.Tensor:
    return torch.clamp(t, -DB_CLAMP, DB_CLAMP)


def frob(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(a - b).reshape(1)


def value_and_grad(fn, x_np: np.ndarray):
    """(fn(x), d sum(fn(x)) / dx), float64, detached."""
    x = torch.tensor(x_np, dtype=F64, requires_grad=True)
    out = fn(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    return out.detach(), g


def clamp_report(name: str, raw: torch.Tensor) -> str:
    """How close the unclamped features come to ±80: a float32 port must land on the
    same side of every clamp edge."""
    margin = float(torch.minimum((raw - DB_CLAMP).abs(), (raw + DB_CLAMP).abs()).min())
    n_hi = int((raw > DB_CLAMP).sum())
    n_lo = int((raw < -DB_CLAMP).sum())
    return f"  {name}: {n_hi} above +80, {n_lo} below -80, min |v ∓ 80| = {margin:.3g}"


# ---------------------------------------------------------------------------
# Per-seed tensors
# ---------------------------------------------------------------------------

def lsd_paper(ref: np.ndarray, est: np.ndarray) -> float:
    """eval.py's LSD: librosa.stft defaults (periodic Hann, centred, zero padding),
    log10(|S| + 1e-10), per frame the RMS over frequency, then the mean over frames."""
    sr_ = np.abs(librosa.stft(ref, n_fft=LSD_N_FFT, hop_length=LSD_HOP))
    se_ = np.abs(librosa.stft(est, n_fft=LSD_N_FFT, hop_length=LSD_HOP))
    assert sr_.dtype == np.float64
    d2 = (np.log10(sr_ + LSD_EPS) - np.log10(se_ + LSD_EPS)) ** 2
    per_frame = np.sqrt(np.mean(d2, axis=-2))  # over frequency
    return float(np.mean(per_frame))


def seed_tensors(s: int, notes: list) -> dict:
    rng = np.random.default_rng(1000 + s)
    x_np = test_signal(rng)
    xref_np = test_signal(rng)
    x, x_ref = torch.tensor(x_np, dtype=F64), torch.tensor(xref_np, dtype=F64)
    out = {"x": x, "x_ref": x_ref}
    M = mel_db()

    # Super-resolution.
    R = resampler()
    w_r = torch.tensor(rng.standard_normal((1, LEN // 2)), dtype=F64)
    _, g_r = value_and_grad(lambda x: R(x) * w_r, x_np)
    target_r = clamp80(M(R(x_ref)))
    loss_r, lg_r = value_and_grad(lambda x: frob(clamp80(M(R(x))), target_r), x_np)
    out.update({
        "resample.kernel": R.kernel.flatten(),
        "resample.y": R(x),
        "resample.weights": w_r,
        "resample.grad": g_r,
        "resample.loss": loss_r,
        "resample.loss_grad": lg_r,
    })
    notes.append(clamp_report(f"s{s} resample M(R(x))", M(R(x))))
    notes.append(clamp_report(f"s{s} resample M(R(x_ref))", M(R(x_ref))))

    # Phase retrieval.
    ms = mel_scale()
    feats = lambda x: clamp80(ms(stft_mag_rect(x)))  # noqa: E731
    target_p = feats(x_ref)
    loss_p, lg_p = value_and_grad(lambda x: frob(feats(x), target_p), x_np)
    out.update({
        "phase.features": feats(x),
        "phase.loss": loss_p,
        "phase.loss_grad": lg_p,
    })
    notes.append(clamp_report(f"s{s} phase mel|A(x)|", ms(stft_mag_rect(x))))
    notes.append(clamp_report(f"s{s} phase mel|A(x_ref)|", ms(stft_mag_rect(x_ref))))

    # Dereverberation.
    (n0, n1), (ir0, ir1) = impulse_responses(s)
    w_v = torch.tensor(rng.standard_normal((1, LEN + 1)), dtype=F64)
    _, g_v = value_and_grad(lambda x: reverb(x, ir0) * w_v, x_np)
    target_v = clamp80(M(reverb(x_ref, ir0)))
    loss_v, lg_v = value_and_grad(lambda x: frob(clamp80(M(reverb(x, ir1))), target_v),
                                  x_np)
    out.update({
        "reverb.normals0": n0, "reverb.normals1": n1,
        "reverb.ir0": ir0, "reverb.ir1": ir1,
        "reverb.y": reverb(x, ir0),
        "reverb.weights": w_v,
        "reverb.grad": g_v,
        "reverb.loss": loss_v,
        "reverb.loss_grad": lg_v,
    })
    notes.append(clamp_report(f"s{s} reverb M(x*ir1)", M(reverb(x, ir1))))
    notes.append(clamp_report(f"s{s} reverb M(x_ref*ir0)", M(reverb(x_ref, ir0))))

    # LSD (numpy, float64): reference first, estimate second, as eval.py passes them.
    out["lsd.paper"] = torch.tensor([lsd_paper(xref_np, x_np)], dtype=F64)

    # Shape checks (the quirks a port must reproduce).
    assert out["resample.y"].shape == (1, LEN // 2)
    assert out["reverb.y"].shape == (1, LEN + 1)
    assert out["phase.features"].shape == (1, N_MELS, 1 + LEN // HOP)
    assert not torch.equal(ir0, ir1)
    return {f"s{s}.{k}": v for k, v in out.items()}


def main() -> int:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)  # guard: every draw above uses its own generator

    tensors, notes = {}, []
    for s in SEEDS:
        for key, t in seed_tensors(s, notes).items():
            t = t.detach()
            assert key not in tensors, key
            assert t.dim() > 0, f"{key}: store scalars with shape [1]"
            assert torch.isfinite(t).all(), f"{key}: non-finite values"
            tensors[key] = t.to(torch.float32).contiguous()

    # One metadata key only: safetensors writes its metadata map in hash order.
    meta = {"generator": f"tools/golden/golden_paper.py; torch {torch.__version__}, "
                         f"torchaudio {torchaudio.__version__}, "
                         f"librosa {librosa.__version__}"}
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT_PATH.with_suffix(".tmp")
    save_file(dict(sorted(tensors.items())), str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # safetensors creates the file 0600
    os.replace(tmp, OUT_PATH)

    for key, t in sorted(tensors.items()):
        print(f"{key:26s} {str(tuple(t.shape)):12s} max|v| {t.abs().max().item():.6g}")
    print("clamp edges (unclamped features):")
    print("\n".join(notes))
    print(f"wrote {OUT_PATH.relative_to(REPO_ROOT)} ({OUT_PATH.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
