#!/usr/bin/env bash
# Rebuild the page of `cnndsl serve` (cnndsl/serve/static/) from its sources in web/: CodeMirror 6 and
# our modules bundled and minified by esbuild, at the versions web/package-lock.json pins (npm ci).
# Needs Node and npm here only: the bundle is committed, so installing cnndsl needs no Node.
#
# The bundle's first line records the sha256 of the sources (web/src/* and package-lock.json, as
# `sha256sum` lists them); tests/test_serve_bundle.py recomputes it, so a source edited without a
# rebuild fails the tests.
#
#     bash tools/build_web.sh
set -euo pipefail
cd "$(dirname "$0")/../web"
npm ci --no-audit --no-fund --loglevel=error
digest=$( { sha256sum package-lock.json; find src -type f | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1)
out=../cnndsl/serve/static
mkdir -p "$out"
banner="/* cnndsl serve: built by tools/build_web.sh from web/ (sources sha256 $digest) */"
npx esbuild src/main.js --bundle --minify --format=iife --target=es2020 --legal-comments=eof \
  --banner:js="$banner" --outfile="$out/app.js" --log-level=warning
npx esbuild src/app.css --minify --banner:css="$banner" --outfile="$out/app.css" --log-level=warning
cp src/index.html "$out/index.html"
# the bundled packages' licences (MIT), as their licences ask
{
  echo "The bundle app.js contains these packages (from web/package-lock.json), under these licences."
  for pkg in $(node -e 'const l=require("./package-lock.json");for(const[k,v] of Object.entries(l.packages))if(k&&!v.dev)console.log(k)'); do
    echo; echo "==== ${pkg#node_modules/} $(node -p "require('./$pkg/package.json').version")"
    cat "$pkg"/LICENSE* 2>/dev/null || echo "(licence: $(node -p "require('./$pkg/package.json').license"))"
  done
} > "$out/THIRD_PARTY.txt"
echo "built $out/app.js ($(wc -c < "$out/app.js") bytes), app.css, index.html; sources sha256 $digest"
