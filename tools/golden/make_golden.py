#!/usr/bin/env python3
"""Writes the golden reference fixtures (tests/fixtures/golden/golden.safetensors).

    bash tools/golden/install.sh
    tools/golden/.venv/bin/python tools/golden/make_golden.py [--seed 0] [--out DIR]
        [--variant default|alt]

Layout: every section is a function ``(rng) -> dict[name, tensor]``, registered in
SECTIONS below (the DSP ones live in golden_dsp.py). Each section gets its own
numpy Generator seeded from (seed, crc32(section name)), so adding, removing or
reordering sections never changes the tensors of the others. main() merges the
dicts, checks them, casts to contiguous float32 and writes one safetensors file.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import golden_dsp  # noqa: E402
import golden_guidance  # noqa: E402
import golden_models  # noqa: E402
import golden_text  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "tests" / "fixtures" / "golden"
FILE_NAME = "golden.safetensors"

# name -> section function. The model sections also write OUT/{unet,vae,vocoder,
# scheduler}/, OUT/model_index.json and OUT/vocoder_bin/ (golden_models.configure sets
# OUT and the variant). "prior" uses the vae / vocoder built by those sections. "text"
# (golden_text.py) writes the text components and OUT/text_prompts.json; it reads the
# widths from OUT/unet/config.json and loads the whole pipeline from OUT, so it runs last.
# "ddim" and "guidance" (golden_guidance.py, sampler steps) read OUT/scheduler; "guidance"
# uses the vae / vocoder like "prior".
SECTIONS = {
    **golden_dsp.SECTIONS,
    **golden_models.SECTIONS,
    **golden_guidance.SECTIONS,
    **golden_text.SECTIONS,
}


def section_rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(name.encode())]))


def setup_determinism() -> None:
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)  # sections must seed their own torch generators; this is a guard


def build(seed: int, only=None) -> dict:
    tensors: dict[str, torch.Tensor] = {}
    for name, fn in SECTIONS.items():
        if only and name not in only:
            continue
        out = fn(section_rng(seed, name))  # a section may also write a shared
        # group (mel -> stft.*); names only need to be unique across sections
        for key, t in out.items():
            if key in tensors:
                raise KeyError(f"duplicate tensor name {key!r} (section {name})")
            t = t.detach()
            if not torch.isfinite(t).all():
                raise ValueError(f"{key}: non-finite values")
            if t.dim() == 0:
                raise ValueError(f"{key}: store scalars with shape [1]")
            tensors[key] = t.to(torch.float32).contiguous()
    return tensors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0, help="fixture seed (default 0)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output directory (default {DEFAULT_OUT.relative_to(REPO_ROOT)})")
    ap.add_argument("--only", nargs="*", choices=sorted(SECTIONS),
                    help="build only these sections (for debugging; do not commit)")
    ap.add_argument("--variant", choices=sorted(golden_models.VARIANTS), default="default",
                    help="tiny model configs (default: the committed set; alt: other "
                         "shapes, not committed)")
    args = ap.parse_args(argv)

    setup_determinism()
    golden_models.configure(args.out, args.variant)
    args.out.mkdir(parents=True, exist_ok=True)
    tensors = build(args.seed, args.only)

    path = args.out / FILE_NAME
    # One metadata key only: safetensors writes its metadata map in hash order, so
    # several keys would make the file bytes differ from run to run.
    sections = ",".join(n for n in SECTIONS if not args.only or n in args.only)
    meta = {"golden": f"generator=tools/golden/make_golden.py seed={args.seed} "
                      f"variant={args.variant} torch={torch.__version__} sections={sections}"}
    tmp = path.with_suffix(".tmp")
    save_file(dict(sorted(tensors.items())), str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)  # safetensors creates the file 0600
    os.replace(tmp, path)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for key, t in sorted(tensors.items()):
        print(f"{key:32s} {str(tuple(t.shape)):14s} "
              f"min {t.min().item(): .4g}  max {t.max().item(): .4g}")
    for key, v in golden_models.STATS.items():
        print(f"  {key}: {v:.3g}" if isinstance(v, float) else f"  {key}: {v}")
    print(f"wrote {path} ({path.stat().st_size} bytes, sha256 {digest[:16]}…), seed {args.seed}, "
          f"variant {args.variant}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
