#!/usr/bin/env bash
# Recreates tests/fixtures/audio/example.wav: a 4.0 s excerpt of real orchestral
# music (with percussion and a cymbal crash near the middle, content up to ~20 kHz)
# taken from a freely licensed Debian package.
#
#   bash tools/example_clip/make_example.sh [OUTPUT.wav]
#
# Source : "Casualties of War" by Tyler Johnson (C) 2009, from The Battle for
#          Wesnoth soundtrack, Debian package wesnoth-1.16-music (GPL-2+),
#          file /usr/share/games/wesnoth/1.16/data/core/music/casualties_of_war.ogg
# Excerpt: 60.0 s .. 64.0 s of that file.
# Output : 44.1 kHz, stereo, 16-bit PCM WAV, 10 ms linear fades at both ends,
#          peak normalised to -1 dBFS, no dither (-D), repeatable mode (-R).
#
# Rerunnable: it installs what is missing (needs root or sudo) and overwrites the output.
# Note: the output need not be byte-identical across package/decoder versions
# (libvorbis and SoX releases may differ in the last bits); duration, format,
# peak and the musical content will match.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:-$ROOT/tests/fixtures/audio/example.wav}"
SRC=/usr/share/games/wesnoth/1.16/data/core/music/casualties_of_war.ogg
START=60.0      # seconds into the source track
LENGTH=4.0      # seconds
FADE=0.01       # seconds, fade-in and fade-out
PEAK_DB=-1      # dBFS

PKGS=(wesnoth-1.16-music sox libsox-fmt-all)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi

mkdir -p "$(dirname "$OUT")"
# decode -> trim -> resample (no-op for this 44.1 kHz source) -> stereo -> fades -> normalise
sox -R -D "$SRC" -b 16 -e signed-integer "$OUT" \
    trim "$START" "$LENGTH" \
    rate -v 44100 \
    channels 2 \
    fade t "$FADE" "$LENGTH" "$FADE" \
    gain -n "$PEAK_DB"

soxi "$OUT"
