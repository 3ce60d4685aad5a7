#!/usr/bin/env bash
# Runs the DGG Restore VST3 inside Ardour 7, headless, and checks that it works there.
#
#   bash tools/ardour/run.sh          (from the repository root; exits 0 when all checks pass)
#
# What it does (details in tools/ardour/README.md):
#   1. installs Ardour 7 (Debian package 'ardour') when ardour7-lua is missing;
#   2. builds target/bundled/DGG Restore.vst3 when it is missing;
#   3. copies the bundle into ~/.vst3 of a temporary HOME (the user's Ardour config and
#      plugin cache are never touched) and indexes it with ardour-vst3-scanner;
#   4. runs tools/ardour/session.lua in ardour7-lua (Dummy audio backend): a new session,
#      a stereo track playing tests/fixtures/audio/example.wav, the plugin inserted, an
#      offline bounce, a real-time roll with Capture on, the saved take, an export of the
#      master bus, and the session reopened with the plugin's state intact.
#
# Environment: KEEP_TMP=1 keeps the temporary directory (session, export, log) for a look.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
bundle="$repo/target/bundled/DGG Restore.vst3"
wav="$repo/tests/fixtures/audio/example.wav"
plugin_name="DGG Restore"

# Ardour 7's Lua session tool and VST3 scanner, as the Debian package installs them.
lua_tool=${ARDOUR_LUA:-ardour7-lua}
ardour_lib=${ARDOUR_LIB:-/usr/lib/ardour7}
scanner="$ardour_lib/ardour-vst3-scanner"

# Any fixed UUID: the id of the export preset run.sh installs (32-bit float WAV).
preset_uuid=6a1f7d2e-0d6b-4c3e-9a57-d66e5a1b7c01

say() { echo "ardour check: $*"; }
fail() { echo "ardour check: FAIL: $*" >&2; exit 1; }

start=$SECONDS

# 1. Ardour 7 -------------------------------------------------------------------------------
if ! command -v "$lua_tool" >/dev/null 2>&1 || [ ! -x "$scanner" ]; then
	command -v apt-get >/dev/null 2>&1 ||
		fail "needs Ardour 7 ($lua_tool and $scanner): install the Debian/Ubuntu package 'ardour' (7.x)"
	sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || fail "needs root (or sudo) to install the 'ardour' package"
		sudo=sudo
	fi
	say "installing the Debian package 'ardour' (about 60 MB to download)..."
	$sudo apt-get update -qq >/dev/null || fail "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends ardour >/dev/null ||
		fail "apt-get install ardour failed"
	command -v "$lua_tool" >/dev/null 2>&1 && [ -x "$scanner" ] ||
		fail "the 'ardour' package did not provide $lua_tool and $scanner (this check needs Ardour 7; got: $(dpkg-query -W -f='${Version}' ardour 2>/dev/null || echo none))"
fi
say "using $("$lua_tool" --version 2>/dev/null | head -n1 || echo "$lua_tool")"

# 2. The plugin bundle ----------------------------------------------------------------------
if [ ! -d "$bundle" ]; then
	say "building the plugin bundle (cargo xtask bundle dgg_restore --release)..."
	(cd "$repo" && cargo xtask bundle dgg_restore --release) || fail "could not build $bundle"
fi
[ -d "$bundle" ] || fail "no plugin bundle at $bundle"
[ -f "$wav" ] || fail "no test clip at $wav"

# 3. A throw-away HOME with the plugin in ~/.vst3 --------------------------------------------
tmp=$(mktemp -d "${TMPDIR:-/tmp}/dgg-ardour.XXXXXX")
cleanup() {
	if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ardour reads its config, caches and VST3 path from these (~/.vst3 is on its default
# VST3 search path), so pointing them into $tmp isolates the run completely.
export HOME="$tmp/home"
export XDG_CONFIG_HOME="$HOME/.config" XDG_CACHE_HOME="$HOME/.cache" XDG_DATA_HOME="$HOME/.local/share"
mkdir -p "$HOME/.vst3" "$XDG_CONFIG_HOME/ardour7/export" "$XDG_CACHE_HOME" "$XDG_DATA_HOME" "$tmp/work"
cp -R "$bundle" "$HOME/.vst3/"
# Ardour trusts the scanner's cache only when the module is strictly older than the cache
# file, in whole seconds: a fresh copy scanned within the same second would be ignored.
find "$HOME/.vst3" -exec touch -d '-1 hour' {} +

# An export preset for 32-bit float WAV at the session rate (the stock "WAV" preset writes
# dithered 16-bit, which could not be compared exactly). The format it names,
# "BWAV 32float Export", ships with Ardour in /usr/share/ardour7/export.
cat >"$XDG_CONFIG_HOME/ardour7/export/dgg-float32.preset" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<ExportPreset id="$preset_uuid" name="DGG check: WAV 32-bit float">
  <ExportFormat id="20b4ab09-6452-4cb3-bd66-b921cdbd2942"/>
  <ExportFilename>
    <Folder relative="1" path="export"/>
    <Field name="label" enabled="0"/>
    <Field name="session" enabled="0"/>
    <Field name="snapshot" enabled="0"/>
    <Field name="timespan" enabled="1"/>
    <Field name="revision" enabled="0"/>
    <Field name="time" enabled="0" value="T_None"/>
    <Field name="date" enabled="0" value="D_None"/>
  </ExportFilename>
</ExportPreset>
EOF

# Index the plugin: the Lua tool only reads the scanner's cache, it never scans itself.
say "scanning $HOME/.vst3/$plugin_name.vst3"
scan_rc=0
LD_LIBRARY_PATH="$ardour_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
	timeout 60 "$scanner" -f "$HOME/.vst3/$plugin_name.vst3" >"$tmp/scan.log" 2>&1 || scan_rc=$?
if [ "$scan_rc" != 0 ] || [ -z "$(find "$XDG_CACHE_HOME" -name '*.v3i' -print -quit)" ]; then
	cat "$tmp/scan.log" >&2
	fail "ardour-vst3-scanner could not index the plugin (exit $scan_rc)"
fi
say "[ok] ardour-vst3-scanner indexed the plugin"

# 4. The session ----------------------------------------------------------------------------
say "running tools/ardour/session.lua in $lua_tool (Dummy backend)"
lua_rc=0
timeout 300 "$lua_tool" "$here/session.lua" "$tmp/work" "$wav" "$plugin_name" "$preset_uuid" \
	</dev/null >"$tmp/session.log" 2>&1 || lua_rc=$?

# Show the checks and anything unexpected, without Ardour's routine chatter.
grep -v -e 'encoder is not available' -e 'Falling back to Reasonable Synth' \
	-e 'Butler drops pool trash' -e 'direct dispatch of call slot' "$tmp/session.log" || true

elapsed=$((SECONDS - start))
if [ "$lua_rc" = 124 ]; then
	fail "$lua_tool did not finish within 300 s"
elif [ "$lua_rc" != 0 ] && grep -q '^RESULT: PASS' "$tmp/session.log"; then
	fail "all checks passed, but $lua_tool then exited with code $lua_rc (a crash on closing the session or unloading the plugin?)"
elif [ "$lua_rc" != 0 ] || ! grep -q '^RESULT: PASS' "$tmp/session.log"; then
	fail "the plugin failed in Ardour ($lua_tool exit code $lua_rc; checks above)"
fi
say "PASS: DGG Restore works in Ardour 7 headless (${elapsed} s)"
