#!/usr/bin/env bash
# Builds the plugin conformance validators into target/validators/ (part of the test command;
# tools/validators/run.sh runs them):
#
#   bash tools/validators/build.sh      (from anywhere; exits 0 when both binaries are there)
#
#   target/validators/bin/clap-validator   free-audio/clap-validator 0.4.1 (cargo, release)
#   target/validators/bin/vst3-validator   Steinberg's VST3 SDK 3.7.14 `validator` (cmake)
#
# Sources: the folder DGG_VALIDATORS_SRC (default ../shared/validators, next to the
# repository), which holds clap-validator/ and vst3sdk/ (see its README.md). It is only read:
# the clap-validator source is copied into target/validators/ before its workspace is
# reduced. Cached: a validator whose binary is already in target/validators/bin/ is not
# rebuilt (rm -rf target/validators to force it). Network: none when clap-validator's crates
# are in the local cargo registry (the build itself runs --offline), else crates.io once to
# fetch them; Debian's mirrors only to install cmake/g++/make with apt-get (as root or via
# sudo) when they are missing.
#
# Environment: DGG_VALIDATORS_SRC (sources), VALIDATORS_JOBS (parallel jobs, default 2).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
src=${DGG_VALIDATORS_SRC:-$repo/../shared/validators}
out="$repo/target/validators"
jobs=${VALIDATORS_JOBS:-2}
bin="$out/bin"

say() { echo "validators build: $*"; }
fail() { echo "validators build: FAIL: $*" >&2; exit 1; }

[ -d "$src" ] || fail "no validator sources at $src (set DGG_VALIDATORS_SRC)"
src=$(cd "$src" && pwd)
mkdir -p "$bin"

# 1. clap-validator ----------------------------------------------------------------------------
build_clap() {
	local csrc="$src/clap-validator" copy="$out/clap-validator-src"
	[ -f "$csrc/Cargo.toml" ] || fail "no clap-validator source at $csrc"
	say "building clap-validator from $csrc (cargo --release --offline, -j$jobs)..."
	# A fresh copy each time: ../shared stays untouched, and nothing stale survives.
	rm -rf "$copy"
	cp -R "$csrc" "$copy"
	chmod -R u+w "$copy"
	# The upstream workspace also lists two test plugins (tests/clack-*) that need a git
	# dependency; the validator itself builds from crates.io alone.
	# (GNU sed -z: the whole file is one record, so a members list over several lines matches.)
	sed -z -E 's/members[[:space:]]*=[[:space:]]*\[[^]]*\]/members = ["."]/' "$csrc/Cargo.toml" >"$copy/Cargo.toml"
	cmp -s "$csrc/Cargo.toml" "$copy/Cargo.toml" ||
		say 'clap-validator workspace reduced to members = ["."]'
	# Not --locked: reducing the workspace may prune Cargo.lock; the remaining crates stay at
	# their pinned versions. Its own target dir, so the project's builds are not disturbed.
	# The crates come from the local cargo registry; those missing there (a fresh CI runner)
	# are downloaded from crates.io first, like the project's own, then the build is offline.
	export CARGO_TARGET_DIR="$out/clap-validator-target"
	if ! (cd "$copy" && cargo fetch --offline >/dev/null 2>&1); then
		say "fetching clap-validator's crates (crates.io)..."
		(cd "$copy" && cargo fetch) || fail "cargo fetch of clap-validator's crates failed"
	fi
	(cd "$copy" && nice -n 19 cargo build --release --offline -p clap-validator -j "$jobs") ||
		fail "cargo build of clap-validator failed"
	unset CARGO_TARGET_DIR
	cp "$out/clap-validator-target/release/clap-validator" "$bin/clap-validator.tmp"
	mv "$bin/clap-validator.tmp" "$bin/clap-validator"
}

if [ -x "$bin/clap-validator" ]; then
	say "clap-validator already built ($bin/clap-validator)"
else
	build_clap
fi

# 2. Steinberg's VST3 validator ----------------------------------------------------------------
ensure_cmake() {
	local missing=()
	command -v cmake >/dev/null 2>&1 || missing+=(cmake)
	command -v g++ >/dev/null 2>&1 || missing+=(g++)
	command -v make >/dev/null 2>&1 || missing+=(make)
	[ ${#missing[@]} -eq 0 ] && return 0
	command -v apt-get >/dev/null 2>&1 || fail "needs ${missing[*]}: install them"
	local sudo=
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null 2>&1 || fail "needs root (or sudo) to install ${missing[*]}"
		sudo=sudo
	fi
	say "installing ${missing[*]} (apt-get)..."
	$sudo apt-get update -qq >/dev/null || fail "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null ||
		fail "apt-get install ${missing[*]} failed"
}

build_vst3() {
	local sdk="$src/vst3sdk" build="$out/vst3-build"
	[ -f "$sdk/CMakeLists.txt" ] || fail "no VST3 SDK at $sdk"
	ensure_cmake
	say "building the VST3 validator from $sdk (cmake, Release, -j$jobs)..."
	# VSTGUI, the plug-in examples and the hosting examples off (the editor host would need
	# gtkmm); the `validator` target is defined regardless.
	cmake -S "$sdk" -B "$build" -DCMAKE_BUILD_TYPE=Release \
		-DSMTG_ENABLE_VSTGUI_SUPPORT=OFF \
		-DSMTG_ENABLE_VST3_PLUGIN_EXAMPLES=OFF \
		-DSMTG_ENABLE_VST3_HOSTING_EXAMPLES=OFF \
		-DSMTG_RUN_VST_VALIDATOR=OFF \
		-DSMTG_CREATE_PLUGIN_LINK=OFF >"$out/vst3-cmake-configure.log" 2>&1 ||
		{ tail -n 30 "$out/vst3-cmake-configure.log" >&2; fail "cmake configure failed (log: $out/vst3-cmake-configure.log)"; }
	nice -n 19 cmake --build "$build" --target validator -j "$jobs" >"$out/vst3-cmake-build.log" 2>&1 ||
		{ tail -n 30 "$out/vst3-cmake-build.log" >&2; fail "cmake build of validator failed (log: $out/vst3-cmake-build.log)"; }
	local v="$build/bin/Release/validator"
	[ -x "$v" ] || v=$(find "$build" -type f -name validator -perm -u+x | head -n1)
	[ -n "$v" ] && [ -x "$v" ] || fail "the build produced no validator binary under $build"
	cp "$v" "$bin/vst3-validator.tmp"
	mv "$bin/vst3-validator.tmp" "$bin/vst3-validator"
}

if [ -x "$bin/vst3-validator" ]; then
	say "VST3 validator already built ($bin/vst3-validator)"
else
	build_vst3
fi

say "ok: $bin/clap-validator, $bin/vst3-validator"
