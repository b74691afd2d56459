#!/bin/sh
# Rewrites report/validation_residuals.csv, the validation residuals the prediction band
# is drawn from (report/band.h), from `orrery validate --format csv scenarios/validation`,
# then rebuilds so that the binary embeds the new table. Run it after any change to the
# model, the simulator or scenarios/validation; tests/report/band_test.cpp fails until then.
#   tools/update_residuals.sh [build-dir]     (default: build)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-"$root/build"}
cmake --build "$build" --target orrery
"$build/cli/orrery" validate --format csv "$root/scenarios/validation" \
  > "$root/report/validation_residuals.csv.new"
mv "$root/report/validation_residuals.csv.new" "$root/report/validation_residuals.csv"
cmake --build "$build"
echo "wrote report/validation_residuals.csv ($(($(wc -l < "$root/report/validation_residuals.csv") - 1)) cases)"
