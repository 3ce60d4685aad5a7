#!/usr/bin/env python3
"""Reference for spectral repair's measurement (#17): the loss-space cells that see a
time-frequency region, and the masked loss, in plain numpy, written independently of the
Rust code, to tests/fixtures/spectral_repair.json.

The loss space is the paper's (16 kHz, n_fft 1024, hop 160, 64 HTK mel bands up to
8 kHz without normalisation, power in dB floored at 1e-10: torchaudio's MelSpectrogram
and AmplitudeToDB), with centred reflect framing and a periodic Hann window. A frame sees
the samples under its window; a mel band sees the STFT bins its filter weighs; a bin sees
a band within two bins of it (the Hann window's main lobe). The loss is
sqrt(sum(cells * (dB(x) - dB(y))^2)).

    python3 tools/spectral_repair/make_fixture.py   # needs only numpy
"""
import json
import math
import pathlib

import numpy as np

SR, N_FFT, HOP, N_MELS = 16_000, 1024, 160, 64
LEN = 6_000
REGIONS = [((1_900, 3_700), (1_500.0, 3_000.0)), ((4_600, 5_000), (6_000.0, 7_900.0))]


def hz_to_mel(f):
    return 2595.0 * np.log10(1.0 + f / 700.0)


def mel_to_hz(m):
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def filterbank():
    """torchaudio.functional.melscale_fbanks(norm=None, mel_scale='htk'): (bins, mels)."""
    freqs = np.linspace(0, SR / 2, N_FFT // 2 + 1)
    pts = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(SR / 2), N_MELS + 2))
    diff = pts[1:] - pts[:-1]
    slopes = pts[None, :] - freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    return np.maximum(0.0, np.minimum(down, up))


def db_mel(x, fb):
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    frames = 1 + len(x) // HOP
    power = np.stack([np.abs(np.fft.rfft(padded[f * HOP:f * HOP + N_FFT] * window)) ** 2 for f in range(frames)])
    return 10.0 * np.log10(np.maximum(power @ fb, 1e-10))


def cells(fb):
    frames, bins = 1 + LEN // HOP, N_FFT // 2 + 1
    out = np.ones((frames, N_MELS))
    for (start, end), (low, high) in REGIONS:
        first = max(0, math.floor(low * N_FFT / SR) - 2)
        last = min(bins - 1, math.ceil(high * N_FFT / SR) + 2)
        mels = [m for m in range(N_MELS) if (fb[first:last + 1, m] > 0).any()]
        for f in range(frames):
            if f * HOP + N_FFT // 2 > start and f * HOP < end + N_FFT // 2:
                out[f, mels] = 0.0
    return out


def main():
    rng = np.random.default_rng(17)
    t = np.arange(LEN) / SR
    x = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(LEN)).astype(np.float32)
    y = (0.3 * np.sin(2 * np.pi * 440 * t + 0.3) + 0.05 * rng.standard_normal(LEN)).astype(np.float32)
    fb = filterbank()
    mask = cells(fb)
    d = db_mel(x.astype(np.float64), fb) - db_mel(y.astype(np.float64), fb)
    loss = math.sqrt(float((mask * d * d).sum()))
    out = pathlib.Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "spectral_repair.json"
    out.write_text(json.dumps({
        "sample_rate": SR, "x": [float(f"{v:.9g}") for v in x], "y": [float(f"{v:.9g}") for v in y],
        "regions": [{"samples": list(s), "band": list(b)} for s, b in REGIONS],
        "cells": mask.astype(int).flatten().tolist(), "loss": loss,
    }))
    print(f"wrote {out}: {int((mask == 0).sum())} of {mask.size} cells see a region, loss {loss:.6f}")


if __name__ == "__main__":
    main()
