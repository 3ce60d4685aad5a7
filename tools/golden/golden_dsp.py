"""DSP sections of the golden fixtures: STFT, mel (VAE domain and loss space),
phase-retrieval mel and LSD, with autograd gradients.

Every section is a function ``section_xxx(rng) -> dict[str, torch.Tensor]`` that
takes its own ``numpy.random.Generator`` (see make_golden.py) and returns float64
(or float32) tensors; make_golden.py casts them to contiguous float32 and writes
them. All signal processing and all gradients here are computed in float64.
"""

from __future__ import annotations

import contextlib

import librosa
import numpy as np
import torch
import torchaudio

F64 = torch.float64

# ---------------------------------------------------------------------------
# Settings (see README.md; DESIGN.md §2/§3)
# ---------------------------------------------------------------------------
SR = 16000
N_FFT = 1024
HOP = 160
WIN = 1024
N_MELS = 64
LOG_MEL_FLOOR = 1e-5  # VAE-domain log-mel: ln(max(mel, 1e-5))
DB_CLAMP = 80.0  # loss-space mel: clamp(-80, 80)
LSD_EPS = 1e-10


@contextlib.contextmanager
def default_dtype(dtype):
    """Build torchaudio modules under a float64 default dtype so that their
    filterbanks and windows are computed in float64, not float32 then cast."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def test_signal(rng: np.random.Generator, n: int, sr: int, n_sines: int = 4,
                noise_std: float = 0.02, peak: float = 0.8) -> np.ndarray:
    """A few random sinusoids plus white noise, scaled to a peak of ``peak`` (< 1)."""
    t = np.arange(n, dtype=np.float64) / sr
    x = np.zeros(n, dtype=np.float64)
    for _ in range(n_sines):
        f = rng.uniform(60.0, 0.45 * sr)
        a = rng.uniform(0.2, 1.0)
        ph = rng.uniform(0.0, 2.0 * np.pi)
        x += a * np.sin(2.0 * np.pi * f * t + ph)
    x += noise_std * n_sines * rng.standard_normal(n)
    return x * (peak / np.max(np.abs(x)))


def hann(n: int) -> torch.Tensor:
    return torch.hann_window(n, periodic=True, dtype=F64)


def stft_mag(wav: torch.Tensor, n_fft: int = N_FFT, hop: int = HOP,
             win: int = WIN) -> torch.Tensor:
    """|STFT|, centred, reflect padding, periodic Hann; (..., n_fft/2+1, frames)."""
    spec = torch.stft(wav, n_fft=n_fft, hop_length=hop, win_length=win,
                      window=hann(win), center=True, pad_mode="reflect",
                      normalized=False, onesided=True, return_complex=True)
    return spec.abs()


def loss_melspec(sample_rate: int, n_fft: int, hop: int, n_mels: int
                 ) -> torchaudio.transforms.MelSpectrogram:
    with default_dtype(F64):
        return torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=n_fft,
            hop_length=hop, n_mels=n_mels, power=2.0, norm=None,
            mel_scale="htk", center=True, pad_mode="reflect", f_min=0.0,
            f_max=None, window_fn=torch.hann_window).to(F64)


def to_db() -> torchaudio.transforms.AmplitudeToDB:
    # 10*log10(max(p, 1e-10)) - 10*log10(max(1e-10, ref=1.0)) = 10*log10(max(p, 1e-10))
    return torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)


def grad_of_sum(fn, wav_np: np.ndarray):
    """Returns (fn(wav), d sum(fn(wav)) / d wav), both float64, detached."""
    wav = torch.tensor(wav_np, dtype=F64, requires_grad=True)
    out = fn(wav)
    (g,) = torch.autograd.grad(out.sum(), wav)
    return out.detach(), g


def _check_margin(x: torch.Tensor, edges, tol: float) -> bool:
    """True when no element lies within ``tol`` of a clamp edge: float32
    re-implementations must land on the same side of every clamp."""
    return all(bool((x - e).abs().min() > tol) for e in edges)


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------

def section_mel(rng: np.random.Generator) -> dict:
    """VAE-domain log-mel (AudioLDM): Slaney mel on |STFT|, ln(max(., 1e-5)),
    layout (frames, 64); plus the magnitude STFT in torch layout."""
    wav_np = test_signal(rng, SR, SR)
    basis = torch.tensor(
        librosa.filters.mel(sr=SR, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0,
                            fmax=SR / 2, dtype=np.float64), dtype=F64)  # (64, 513)

    def logmel(wav):
        mag = stft_mag(wav)  # (513, frames)
        mel = basis @ mag  # (64, frames)
        return torch.log(torch.clamp(mel, min=LOG_MEL_FLOOR)).T  # (frames, 64)

    out, grad = grad_of_sum(logmel, wav_np)
    wav = torch.tensor(wav_np, dtype=F64)
    return {
        "mel.wav": wav,
        "mel.basis": basis,
        "mel.logmel": out,
        "mel.grad_wav_of_sum": grad,
        "stft.mag": stft_mag(wav),
    }


def section_lossmel(rng: np.random.Generator) -> dict:
    """Loss-space mel (dB, clamped to ±80) on a signal with 0.25 s of exact zeros."""
    melspec = loss_melspec(SR, N_FFT, HOP, N_MELS)
    db = to_db()

    def fn(wav):
        return torch.clamp(db(melspec(wav[None])), -DB_CLAMP, DB_CLAMP)

    # Redraw (deterministically) in the unlikely case a bin sits on a clamp edge.
    for _ in range(100):
        wav_np = test_signal(rng, SR, SR)
        a, b = int(0.375 * SR), int(0.625 * SR)  # 0.25 s of exact digital zeros
        wav_np[a:b] = 0.0
        out, grad = grad_of_sum(fn, wav_np)
        raw = db(melspec(torch.tensor(wav_np, dtype=F64)[None]))
        if _check_margin(raw, (-DB_CLAMP, DB_CLAMP), 1e-2):
            break
    else:
        raise RuntimeError("lossmel: no signal with a clean clamp margin")

    assert not torch.isnan(out).any(), "lossmel.melspec_db has NaN"
    assert not torch.isnan(grad).any(), "lossmel.grad_wav_of_sum has NaN"
    assert torch.isfinite(grad).all(), "lossmel.grad_wav_of_sum is not finite"
    # Frames whose whole window lies in the zero stretch must be exactly -80 dB.
    first = -(-(a + N_FFT // 2) // HOP)
    last = (b - N_FFT // 2) // HOP
    assert last >= first, "zero stretch shorter than one window"
    assert (out[0, :, first:last + 1] == -DB_CLAMP).all(), "silent frames are not -80 dB"
    return {
        "lossmel.wav": torch.tensor(wav_np, dtype=F64),
        "lossmel.melspec_db": out,
        "lossmel.grad_wav_of_sum": grad,
    }


def section_lossmel_small(rng: np.random.Generator) -> dict:
    """Loss-space mel with small settings and no ±80 clamp (easy to check by hand)."""
    sr, n_fft, hop, n_mels = 8000, 64, 16, 8
    melspec = loss_melspec(sr, n_fft, hop, n_mels)
    db = to_db()
    wav_np = test_signal(rng, sr // 10, sr)

    out, grad = grad_of_sum(lambda w: db(melspec(w[None])), wav_np)
    assert torch.isfinite(grad).all()
    scalar = lambda v: torch.tensor([float(v)], dtype=F64)  # noqa: E731
    return {
        "lossmel_small.wav": torch.tensor(wav_np, dtype=F64),
        "lossmel_small.melspec_db": out,
        "lossmel_small.grad_wav_of_sum": grad,
        "lossmel_small.n_fft": scalar(n_fft),
        "lossmel_small.hop": scalar(hop),
        "lossmel_small.n_mels": scalar(n_mels),
        "lossmel_small.sample_rate": scalar(sr),
    }


def section_phasemel(rng: np.random.Generator) -> dict:
    """Phase-retrieval loss space: HTK mel (no norm) of |STFT|, clamp(-80, 80), no dB."""
    with default_dtype(F64):
        mel_scale = torchaudio.transforms.MelScale(
            n_mels=N_MELS, sample_rate=SR, n_stft=N_FFT // 2 + 1, norm=None,
            mel_scale="htk").to(F64)

    def fn(wav):
        return torch.clamp(mel_scale(stft_mag(wav[None])), -DB_CLAMP, DB_CLAMP)

    for _ in range(100):
        # A louder signal than elsewhere so that some bins exceed +80 (clamped).
        wav_np = test_signal(rng, SR // 2, SR, peak=0.95)
        raw = mel_scale(stft_mag(torch.tensor(wav_np, dtype=F64)[None]))
        if _check_margin(raw, (DB_CLAMP,), 1e-2):
            break
    else:
        raise RuntimeError("phasemel: no signal with a clean clamp margin")

    out, grad = grad_of_sum(fn, wav_np)
    assert torch.isfinite(grad).all()
    return {
        "phasemel.wav": torch.tensor(wav_np, dtype=F64),
        "phasemel.mel": out,
        "phasemel.grad_wav_of_sum": grad,
    }


def lowpass(x: np.ndarray, cutoff: float, sr: int, taps: int = 101) -> np.ndarray:
    """Windowed-sinc (Hann) FIR low-pass, zero-phase ('same' convolution)."""
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff / sr * np.sinc(2 * cutoff / sr * n) * np.hanning(taps)
    h /= h.sum()
    return np.convolve(x, h, mode="same")


def lsd(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    lr = torch.log10(stft_mag(ref) + LSD_EPS)
    le = torch.log10(stft_mag(est) + LSD_EPS)
    per_frame = torch.sqrt(torch.mean((lr - le) ** 2, dim=0))  # over freq
    return per_frame.mean().reshape(1)


def section_lsd(rng: np.random.Generator) -> dict:
    """Log-spectral distance between a signal and a low-passed, noisy copy."""
    ref_np = test_signal(rng, SR, SR, n_sines=6)
    est_np = lowpass(ref_np, 4000.0, SR) + 0.01 * rng.standard_normal(SR)
    ref = torch.tensor(ref_np, dtype=F64)
    est = torch.tensor(est_np, dtype=F64)
    return {"lsd.ref": ref, "lsd.est": est, "lsd.value": lsd(ref, est)}


SECTIONS = {
    "mel": section_mel,
    "lossmel": section_lossmel,
    "lossmel_small": section_lossmel_small,
    "phasemel": section_phasemel,
    "lsd": section_lsd,
}
