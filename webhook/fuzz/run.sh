#!/usr/bin/env bash
# Runs one fuzz target of the admission handlers for a number of seconds.
#
#   webhook/fuzz/run.sh <target> [seconds=600] [extra libFuzzer flags...]
#
# Targets: handle_inject_body, handle_validate_body, validate_value (see fuzz_targets/).
# Installs cargo-fuzz if it is missing. cargo-fuzz passes nightly-only flags to rustc; on a
# stable toolchain RUSTC_BOOTSTRAP=1 lets them through. SANITIZER=address (the default) builds
# with AddressSanitizer; SANITIZER=none builds without one (faster, catches panics only).
# The corpus (corpus/<target>/) is seeded from webhook/testdata the first time (needs python3
# with PyYAML). Crashes go to artifacts/<target>/; a crash found here belongs in a regression
# test in the webhook crate. Not run in CI.
set -euo pipefail

target=${1:?usage: run.sh <handle_inject_body|handle_validate_body|validate_value> [seconds] [libFuzzer flags...]}
seconds=${2:-600}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

corpus="corpus/$target"
if [ -z "$(ls -A "$corpus" 2>/dev/null)" ]; then
    mkdir -p "$corpus"
    python3 seed_corpus.py "$target" "$here/../testdata" "$corpus"
fi

export RUSTC_BOOTSTRAP=1
exec cargo fuzz run --sanitizer "${SANITIZER:-address}" "$target" "$corpus" -- \
    -max_total_time="$seconds" -dict=json.dict -max_len=65536 -timeout=10 "$@"
