#!/usr/bin/env bash
# Re-fetches the chart library the web UI embeds (uPlot, MIT) with npm and copies
# its browser build and licence into service/src/ui/assets/vendor/, where
# `include_bytes!` puts them into the binary. Nothing is fetched at build or run
# time: run this only to change the pinned version, then commit the files.
set -euo pipefail
cd "$(dirname "$0")/.."
version="1.6.32"
dest="service/src/ui/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "uplot@$version" >/dev/null)
tar -xzf "$work/uplot-$version.tgz" -C "$work"
mkdir -p "$dest"
cp "$work/package/dist/uPlot.iife.min.js" "$dest/uPlot.iife.min.js"
cp "$work/package/dist/uPlot.min.css" "$dest/uPlot.min.css"
cp "$work/package/LICENSE" "$dest/uPlot.LICENSE"
echo "uplot $version" >"$dest/VERSION"
ls -l "$dest"
