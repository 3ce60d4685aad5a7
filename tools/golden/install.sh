#!/usr/bin/env bash
# Creates tools/golden/.venv and installs the pinned reference stack into it.
# Idempotent: a second run with an unchanged requirements.txt only re-checks imports.
#
#   bash tools/golden/install.sh
#
# Environment: PYTHON (default python3, must be >= 3.11).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
REQ="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"
PYTHON="${PYTHON:-python3}"

"$PYTHON" - <<'EOF'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"tools/golden needs Python >= 3.11, found {sys.version.split()[0]}")
EOF

want="$(sha256sum "$REQ" | cut -d' ' -f1)"

check() {
    "$VENV/bin/python" - <<'EOF'
import torch, torchaudio, librosa, numpy, safetensors
from diffusers import AudioLDM2UNet2DConditionModel, AutoencoderKL, DDIMScheduler
from transformers import SpeechT5HifiGan, SpeechT5HifiGanConfig
x = torch.randn(4096, dtype=torch.float64)
s = torch.stft(x, 1024, 160, window=torch.hann_window(1024, dtype=torch.float64), return_complex=True)
assert s.shape == (513, 26), s.shape
print(f"tools/golden venv OK: torch {torch.__version__}, torchaudio {torchaudio.__version__}, "
      f"librosa {librosa.__version__}, numpy {numpy.__version__}")
EOF
}

if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
    if check; then
        exit 0
    fi
    echo "existing venv failed the import check; reinstalling" >&2
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    "$PYTHON" -m venv "$VENV"
fi
rm -f "$STAMP"

# --no-deps: requirements.txt is a complete lock (torch's CUDA runtime wheels are
# listed explicitly; triton is left out on purpose). Nothing is resolved here.
"$VENV/bin/python" -m pip install --disable-pip-version-check --no-input \
    --no-deps -r "$REQ"

check
echo "$want" > "$STAMP"
