#!/usr/bin/env bash
# Renders the mixin (Debian's `jsonnet` package) into the repository's alerts/ and dashboards/,
# or into OUT_DIR with the overrides of OVERRIDES (jsonnet mixed into the mixin, e.g.
# '{ _config+:: { selector: "job=\"docker\"" } }').
#
#   mixin/render.sh                   # the committed files
#   mixin/render.sh OUT_DIR [OVERRIDES]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/..}
overrides=${2:-\{\}}
mkdir -p "$out/alerts" "$out/dashboards"
{
    echo "# Rendered from mixin/ by mixin/render.sh: edit the mixin, not this file."
    echo "# Load with rule_files: [\".../alerts/*.rules.yml\"]. Tests: tests/alerts/ (promtool)."
    jsonnet -J "$here" -S --tla-code "overrides=$overrides" "$here/lib/rules.jsonnet"
} >"$out/alerts/docker-events-exporter.rules.yml"
# jsonnet -m writes each dashboard as its own file and prints the names.
jsonnet -J "$here" --tla-code "overrides=$overrides" -m "$out/dashboards" "$here/lib/dashboards.jsonnet" >/dev/null
