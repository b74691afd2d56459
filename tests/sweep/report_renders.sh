#!/bin/sh
# Usage: report_renders.sh ORRERY SCENARIO WORKDIR CHARTS [NAME...]
# orrery report's page, opened in headless Chromium, runs its self-check without a script
# error and finds every one of its CHARTS charts drawn (<body data-status="ok CHARTS">; a
# sweep of one GPU count has no scaling chart); each NAME
# (a system of the sweep) is named in the rendered page's per-system table.
# Skipped (exit 77) only where no chromium is installed (apt-get install chromium).
set -eu
orrery=$1 scenario=$2 dir=$3 charts=$4
shift 4
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
[ "$status" = "data-status=\"ok $charts\"" ]
for name in "$@"; do
  if ! grep -F "<tr class=\"system\"><td style=\"text-align:left\">$name" "$dir/dom.html" >/dev/null; then
    echo "the per-system table does not name $name"; exit 1
  fi
  echo "names: $name"
done
