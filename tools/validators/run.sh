#!/usr/bin/env bash
# Runs the plugin conformance validators on the bundled plugin (part of the test command, after
# tools/validators/build.sh):
#
#   bash tools/validators/run.sh [CLAP [VST3]]    (exits 0 when every validator passes)
#
#   1. clap-validator validate     every test, each in its own process (the default)
#   2. clap-validator fuzz         a fixed list of seeds (default 1-300), one deterministic
#                                  fuzzing chunk per seed (`fuzz -r SEED`, two at a time), so
#                                  every run replays the same calls; about two minutes
#   3. VST3 validator -e           Steinberg's validator, extensive tests, on the bundle folder
#
# All three run even when one fails; the exit status is 1 if any failed. A short summary is
# printed; the full logs are in target/validators/logs/ (fuzz/seed-N.txt for failed seeds).
# Replay one fuzz seed:
#   target/validators/bin/clap-validator fuzz -r SEED "target/bundled/DGG Restore.clap"
# (add `-v debug` before `fuzz` for more detail).
#
# Environment (all optional):
#   DGG_CLAP_BUNDLE, DGG_VST3_BUNDLE   the bundles (default target/bundled/DGG Restore.{clap,vst3};
#                                      the arguments, when given, win)
#   VALIDATORS_BIN                     where build.sh put the binaries (target/validators/bin)
#   VALIDATORS_LOGS                    log folder (target/validators/logs)
#   VALIDATORS_FUZZ_SEEDS              seeds, "FIRST-LAST" or a list "7 42 99" (1-300)
#   VALIDATORS_FUZZ_JOBS               seeds run in parallel (2)
#   VALIDATORS_FUZZ_SEED_TIMEOUT       seconds one seed may take before it counts as failed (120)
#   VALIDATORS_FUZZ_BUDGET             seconds after which no further seed is started (300);
#                                      the summary then says how many ran (not a failure)
#   VALIDATORS_TIMEOUT                 seconds for `validate` and for the VST3 validator (600)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
clap=${1:-${DGG_CLAP_BUNDLE:-$repo/target/bundled/DGG Restore.clap}}
vst3=${2:-${DGG_VST3_BUNDLE:-$repo/target/bundled/DGG Restore.vst3}}
bin=${VALIDATORS_BIN:-$repo/target/validators/bin}
logs=${VALIDATORS_LOGS:-$repo/target/validators/logs}
seeds=${VALIDATORS_FUZZ_SEEDS:-1-300}
fuzz_jobs=${VALIDATORS_FUZZ_JOBS:-2}
seed_timeout=${VALIDATORS_FUZZ_SEED_TIMEOUT:-120}
fuzz_budget=${VALIDATORS_FUZZ_BUDGET:-300}
step_timeout=${VALIDATORS_TIMEOUT:-600}

cv="$bin/clap-validator"
vv="$bin/vst3-validator"

say() { echo "validators: $*"; }
die() { echo "validators: FAIL: $*" >&2; exit 1; }
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g'; }
# A path as the user would type it from the repository root.
rel() { case $1 in "$repo"/*) echo "${1#"$repo"/}" ;; *) echo "$1" ;; esac; }

[ -x "$cv" ] && [ -x "$vv" ] || die "validators not built in $bin: run bash tools/validators/build.sh first"
[ -f "$clap" ] || die "no CLAP bundle at $clap (cargo xtask bundle dgg_restore --release)"
[ -d "$vst3" ] || die "no VST3 bundle folder at $vst3 (cargo xtask bundle dgg_restore --release)"
case $seeds in
*-*) seed_list=$(seq "${seeds%-*}" "${seeds#*-}") || die "bad VALIDATORS_FUZZ_SEEDS: $seeds" ;;
*) seed_list=$seeds ;;
esac

mkdir -p "$logs"
rm -rf "$logs/fuzz"
mkdir -p "$logs/fuzz"
rm -f "$logs"/clap-validate.txt "$logs"/clap-fuzz.txt "$logs"/vst3-validator-extensive.txt "$logs"/summary.txt
status=0
summary=()   # one line per validator
details=()   # what failed, for the end of the output

# 1. clap-validator validate (out of process) ---------------------------------------------------
say "clap-validator validate $(rel "$clap")"
start=$SECONDS
timeout -k 10 "$step_timeout" "$cv" validate "$clap" >"$logs/clap-validate.txt.raw" 2>&1
rc=$?
strip_ansi <"$logs/clap-validate.txt.raw" >"$logs/clap-validate.txt" && rm -f "$logs/clap-validate.txt.raw"
tally=$(grep -E '^[0-9]+ tests run, ' "$logs/clap-validate.txt" | tail -n1)
# Tests whose status is not PASSED/SKIPPED, with their details, from the report's tree:
#   │ ┌─ test-name / │ │ description / │ │ ┌─ / │ │ │ details / │ │ └── / │ └── STATUS ─ time
bad=$(awk '
	/^│ ┌─ / { name = substr($0, index($0, "┌─ ") + length("┌─ ")); det = ""; inner = 0; next }
	/^│ │ ┌─/ { inner = 1; next }
	/^│ │ └──/ { inner = 0; next }
	inner && /^│ │ │ / { line = substr($0, index($0, "│ │ │ ") + length("│ │ │ ")); det = det (det == "" ? "" : " ") line; next }
	/^│ └── (FAILED|CRASHED|WARNING)/ { st = $3; print "  " st " " name ": " (det == "" ? "(no details)" : det) }
' "$logs/clap-validate.txt")
if [ $rc -eq 0 ] && [ -n "$tally" ]; then
	summary+=("PASS  clap-validator validate: $tally ($((SECONDS - start)) s)")
else
	status=1
	[ $rc -eq 124 ] && tally="timed out after $step_timeout s"
	summary+=("FAIL  clap-validator validate: ${tally:-no result, exit status $rc} ($((SECONDS - start)) s)")
	[ -n "$bad" ] || bad="  (see the log; last lines: $(tail -n 3 "$logs/clap-validate.txt" | tr '\n' ' '))"
	details+=("clap-validator validate, log $(rel "$logs/clap-validate.txt"):" "$bad")
	bad=
fi
[ -n "$bad" ] && details+=("clap-validator validate warnings, log $(rel "$logs/clap-validate.txt"):" "$bad")

# 2. clap-validator fuzz, fixed seeds -----------------------------------------------------------
n_seeds=$(echo $seed_list | wc -w)
say "clap-validator fuzz: $n_seeds seeds ($seeds), $fuzz_jobs at a time"
start=$SECONDS
fuzz_one() {
	local seed=$1 t0=$SECONDS rc
	timeout -k 5 "$seed_timeout" "$cv" fuzz -r "$seed" "$clap" >"$logs/fuzz/seed-$seed.raw" 2>&1
	rc=$?
	strip_ansi <"$logs/fuzz/seed-$seed.raw" >"$logs/fuzz/seed-$seed.txt"
	rm -f "$logs/fuzz/seed-$seed.raw"
	# one line per seed: seed, exit status, seconds
	echo "$seed $rc $((SECONDS - t0))" >>"$logs/fuzz/results.txt"
	[ $rc -eq 0 ] && rm -f "$logs/fuzz/seed-$seed.txt"
	return 0
}
: >"$logs/fuzz/results.txt"
running=0 started=0 stopped=
for seed in $seed_list; do
	if [ $((SECONDS - start)) -ge "$fuzz_budget" ]; then
		stopped=1
		break
	fi
	fuzz_one "$seed" &
	started=$((started + 1))
	running=$((running + 1))
	if [ $running -ge "$fuzz_jobs" ]; then
		wait -n
		running=$((running - 1))
	fi
done
wait
sort -n -o "$logs/fuzz/results.txt" "$logs/fuzz/results.txt"
failed_seeds=$(awk '$2 != 0' "$logs/fuzz/results.txt")
n_failed=$(echo -n "$failed_seeds" | grep -c . || true)
slowest=$(sort -k3,3n "$logs/fuzz/results.txt" | tail -n1 | awk '{print "seed " $1 ", " $3 " s"}')
what="$started of $n_seeds seeds run, $n_failed failed, slowest $slowest"
[ -n "$stopped" ] && what="$what; STOPPED at the $fuzz_budget s budget"
if [ "$n_failed" -eq 0 ]; then
	summary+=("PASS  clap-validator fuzz: $what ($((SECONDS - start)) s)")
else
	status=1
	summary+=("FAIL  clap-validator fuzz: $what ($((SECONDS - start)) s)")
	lines=()
	while read -r seed rc secs; do
		case $rc in
		124 | 137) why="timed out after $seed_timeout s" ;;
		1)	# the report: "┌─ plugin-id", "│ details" lines, "└── FAILED ─ seed"
			why=$(grep -m1 -oE '^└── (FAILED|CRASHED)' "$logs/fuzz/seed-$seed.txt" | cut -d' ' -f2)
			why="${why:-FAILED}: $(grep -E '^│ ' "$logs/fuzz/seed-$seed.txt" | sed 's/^│ *//' | tr '\n' ' ' | cut -c1-300)" ;;
		*) why="exit status $rc$([ "$rc" -gt 128 ] && echo " (signal $((rc - 128)))")" ;;
		esac
		lines+=("  seed $seed: $why")
		lines+=("    log $(rel "$logs/fuzz/seed-$seed.txt"); replay: $(rel "$cv") fuzz -r $seed \"$(rel "$clap")\"")
	done <<<"$failed_seeds"
	details+=("clap-validator fuzz:" "$(printf '%s\n' "${lines[@]}")")
fi

# 3. VST3 validator, extensive ------------------------------------------------------------------
say "VST3 validator -e $(rel "$vst3")"
start=$SECONDS
timeout -k 10 "$step_timeout" "$vv" -e "$vst3" >"$logs/vst3-validator-extensive.txt" 2>&1
rc=$?
tally=$(grep -E '^Result: ' "$logs/vst3-validator-extensive.txt" | tail -n1 | sed 's/^Result: //')
if [ $rc -eq 0 ] && [ -n "$tally" ]; then
	summary+=("PASS  VST3 validator -e: $tally ($((SECONDS - start)) s)")
else
	status=1
	[ $rc -eq 124 ] && tally="timed out after $step_timeout s"
	summary+=("FAIL  VST3 validator -e: ${tally:-no result, exit status $rc} ($((SECONDS - start)) s)")
	# Each test prints "[name: description]", then "ERROR: ..." lines, then "[XXXXXXX Failed]".
	bad=$(awk '
		/^\[/ && !/^\[Succeeded\]/ && !/^\[XXXXXXX Failed\]/ { name = $0; err = ""; next }
		/^ERROR: / { err = err (err == "" ? "" : " ") substr($0, 8); next }
		/^\[XXXXXXX Failed\]/ { print "  " name ": " (err == "" ? "(no ERROR lines)" : err) }
	' "$logs/vst3-validator-extensive.txt")
	[ -n "$bad" ] || bad="  (see the log; last lines: $(tail -n 3 "$logs/vst3-validator-extensive.txt" | tr '\n' ' '))"
	details+=("VST3 validator -e, log $(rel "$logs/vst3-validator-extensive.txt"):" "$bad")
fi

# Summary ---------------------------------------------------------------------------------------
{
	echo
	echo "validators: summary ($(rel "$clap"), $(rel "$vst3"))"
	printf '  %s\n' "${summary[@]}"
	[ ${#details[@]} -eq 0 ] || printf '%s\n' "${details[@]}"
	echo "validators: full logs in $(rel "$logs")/"
} | tee "$logs/summary.txt"
[ $status -eq 0 ] && say "all passed" || say "FAILED"
exit $status
