#!/usr/bin/env bash
# Refresh the vendored Swagger UI and ReDoc (/docs and /redoc never load from a CDN: users run on
# closed networks, where FastAPI's defaults showed blank pages).
set -euo pipefail
swagger="${1:-5.36.0}"
redoc="${2:-2.5.4}"
target="$(cd "$(dirname "$0")/.." && pwd)/service/dashboard/static/vendor"
work=$(mktemp -d)
(cd "$work" && npm pack --silent "swagger-ui-dist@${swagger}" "redoc@${redoc}" >/dev/null 2>&1)
mkdir -p "$work/swagger" "$work/redoc"
tar xzf "$work"/swagger-ui-dist-*.tgz -C "$work/swagger"
tar xzf "$work"/redoc-*.tgz -C "$work/redoc"
cp "$work/swagger/package/swagger-ui-bundle.js" "$work/swagger/package/swagger-ui.css" "$target/"
cp "$work/swagger/package/favicon-32x32.png" "$target/swagger-favicon-32x32.png"
cp "$work/swagger/package/LICENSE" "$target/swagger-ui-LICENSE"
# ReDoc's sidebar loads a logo from cdn.redoc.ly: point it at a file we ship instead
sed 's#https://cdn.redoc.ly/redoc/logo-mini.svg#/dashboard/static/vendor/swagger-favicon-32x32.png#' \
  "$work/redoc/package/bundles/redoc.standalone.js" > "$target/redoc.standalone.js"
cp "$work/redoc/package/LICENSE" "$target/redoc-LICENSE"
grep -v -e '^swagger-ui-dist' -e '^redoc' "$target/VERSIONS.txt" > "$work/versions" || true
printf 'swagger-ui-dist %s\nredoc %s\n' "$swagger" "$redoc" >> "$work/versions"
mv "$work/versions" "$target/VERSIONS.txt"
rm -rf "$work"
echo "vendored swagger-ui-dist ${swagger} and redoc ${redoc} into ${target}"
