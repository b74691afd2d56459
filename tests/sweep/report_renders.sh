#!/bin/sh
# Usage: report_renders.sh ORRERY SCENARIO WORKDIR
# orrery report's page, opened in headless Chromium, runs its self-check without a script
# error and finds every one of its 5 charts drawn (<body data-status="ok 5">).
# Skipped (exit 77) only where no chromium is installed (apt-get install chromium).
set -eu
orrery=$1 scenario=$2 dir=$3
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "skipped: no chromium to render the report (apt-get install chromium)"
  exit 77
fi
rm -rf "$dir" && mkdir -p "$dir"
"$orrery" sweep "$scenario" --json "$dir/results.json" >/dev/null
"$orrery" report "$dir/results.json" -o "$dir/report.html"
# Offline: nothing in the page may point outside it.
if grep -Eq '(src|href)="(https?:)?//' "$dir/report.html"; then
  echo "the page links outside itself"; exit 1
fi
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --user-data-dir="$dir/profile" \
  --dump-dom "file://$dir/report.html" >"$dir/dom.html" 2>"$dir/browser.log"
status=$(grep -o 'data-status="[^"]*"' "$dir/dom.html" | head -1)
echo "page status: $status"
[ "$status" = 'data-status="ok 5"' ]
