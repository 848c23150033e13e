#!/usr/bin/env bash
# Runs the cargo-fuzz targets (fuzz/): event decoding and applying, the rules config, and
# placeholder rendering. Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# Not part of CI's default run; the corpora it grows are replayed by the test suite on stable
# (tests/integration/fuzz_corpus.rs). A crash lands in fuzz/artifacts/TARGET/: minimise it
# (`cargo +nightly fuzz tmin TARGET FILE`), fix it, and keep it in fuzz/regressions/TARGET/.
#
#   bash scripts/fuzz.sh            # each target for 60 s
#   SECONDS_EACH=600 bash scripts/fuzz.sh decode_and_apply
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
targets=${*:-"decode_and_apply rules_config template"}
for t in $targets; do
    echo "== $t, ${SECONDS_EACH:-60} s"
    mkdir -p "corpus/$t"
    # A scratch copy grows during the run; only a minimised corpus is kept.
    scratch=$(mktemp -d)
    cp -r "corpus/$t/." "$scratch/"
    cargo +nightly fuzz run -O "$t" "$scratch" -- -max_total_time="${SECONDS_EACH:-60}" \
        -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1 2>&1 | grep -E '^(#|==|stat::|SUMMARY|Done)' | tail -n 12
    cargo +nightly fuzz cmin -O "$t" "$scratch" >/dev/null 2>&1
    rm -rf "corpus/$t" && mv "$scratch" "corpus/$t"
    echo "corpus/$t: $(ls "corpus/$t" | wc -l) inputs, $(du -sh "corpus/$t" | cut -f1)"
done
