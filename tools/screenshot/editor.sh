#!/usr/bin/env bash
# Renders the plugin's editor under Xvfb and saves it as docs/editor.png.
#
# The standalone build (nice-plug's standalone host, dummy audio backend) opens the editor
# with a demo session: the example clip with a gap cut into it, that gap marked, and a
# restoration made by the tiny test model (so the restored audio is noise: the picture is
# about the editor, not the model). Run from anywhere: bash tools/screenshot/editor.sh
# Needs root for apt-get (Debian packages: Xvfb, xwd, ImageMagick, Mesa, ALSA and JACK headers).
set -euo pipefail
cd "$(dirname "$0")/../.."

packages=(xvfb x11-apps x11-utils imagemagick libasound2-dev libjack-jackd2-dev pkg-config libgl1 libglx-mesa0 libgl1-mesa-dri libx11-xcb1 libxcursor1)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
    apt-get update -qq
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
fi

cargo build --release --features standalone --bin dgg-restore-standalone --bin dgg-restore

work=$(mktemp -d)
display=:87
cleanup() {
    kill "${app:-}" "${xvfb:-}" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

gap=1.5-2.0
export HF_HUB_OFFLINE=1
target/release/dgg-restore degrade --task inpaint --gap "$gap" tests/fixtures/audio/example.wav "$work/gapped.wav"
target/release/dgg-restore restore --task inpaint --gap "$gap" --steps 10 --model tests/fixtures/golden "$work/gapped.wav" "$work/restored.wav"

Xvfb "$display" -screen 0 1280x900x24 -nolisten tcp &
xvfb=$!
export DISPLAY=$display LIBGL_ALWAYS_SOFTWARE=1
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

target/release/dgg-restore-standalone --clip "$work/gapped.wav" --restored "$work/restored.wav" --gap "$gap" -- --backend dummy &
app=$!
for _ in $(seq 100); do xwininfo -name "DGG Restore" >/dev/null 2>&1 && break; sleep 0.2; done
sleep 3 # the first frames: fonts, textures
xwd -silent -name "DGG Restore" | convert xwd:- docs/editor.png
echo "wrote docs/editor.png"
