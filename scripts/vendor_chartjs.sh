#!/usr/bin/env bash
# Refresh the vendored Chart.js (the dashboard never loads from a CDN: users run on closed networks).
set -euo pipefail
version="${1:-4.6.1}"
target="$(cd "$(dirname "$0")/.." && pwd)/service/dashboard/static/vendor"
work=$(mktemp -d)
(cd "$work" && npm pack --silent "chart.js@${version}" >/dev/null 2>&1 && tar xzf chart.js-*.tgz)
cp "$work/package/dist/chart.umd.min.js" "$target/chart.umd.min.js"
cp "$work/package/LICENSE.md" "$target/chart.js-LICENSE.md"
echo "chart.js ${version}" > "$target/VERSIONS.txt"
rm -rf "$work"
echo "vendored chart.js ${version} into ${target}"
