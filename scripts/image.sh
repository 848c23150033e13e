#!/usr/bin/env bash
# Builds the runtime image as docker-events-exporter:local with no pull (nothing can be pulled
# here): the release binary, the shared libraries it links (as `ldd` lists them: glibc,
# libgcc), CA certificates and the nonroot user, on `scratch`, under the runtime stage of the
# repository's own Dockerfile. That stage (its USER, EXPOSE, HEALTHCHECK and ENTRYPOINT) is
# read from the Dockerfile itself, with only its FROM and its COPY of the built binary
# replaced, so the two cannot drift apart; tests/integration/our_image.rs also compares the built
# image's configuration with the Dockerfile's.
#
#   bash scripts/image.sh [TAG]       # default docker-events-exporter:local
#   BIN=path/to/binary bash scripts/image.sh TAG   # that binary (the tests': no release build)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-docker-events-exporter:local}
if [ -z "${BIN:-}" ]; then
    cargo build --release --locked --quiet
fi
bin=${BIN:-target/release/docker-events-exporter}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp"
cp "$bin" "$root/usr/local/bin/docker-events-exporter"
strip "$root/usr/local/bin/docker-events-exporter"
# The libraries it links, and the dynamic loader, at the paths the binary asks for them.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# distroless's nonroot user and group (65532).
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"
# The Dockerfile's last stage, from scratch with the files above instead of distroless's, and
# each of its COPY --from=build taking its file from here: the binary, or an empty folder.
mkdir -p "$ctx/from-build"
awk '/^FROM / { body = ""; next } { body = body $0 "\n" } END { printf "%s", body }' Dockerfile |
while IFS= read -r line; do
    if [[ $line == "COPY --from=build "* ]]; then
        words=($line)
        dst=${words[-1]}
        flags=("${words[@]:2:${#words[@]}-4}")
        mkdir -p "$ctx/from-build$(dirname "$dst")"
        if [[ ${words[-2]} == */docker-events-exporter ]]; then
            cp "$root/usr/local/bin/docker-events-exporter" "$ctx/from-build$dst"
        else
            mkdir -p "$ctx/from-build$dst"
        fi
        echo "COPY ${flags[*]} from-build$dst $dst"
    else
        printf '%s\n' "$line"
    fi
done > "$ctx/Dockerfile.body"
rm "$root/usr/local/bin/docker-events-exporter"
{
    echo "FROM scratch"
    echo "COPY rootfs/ /"
    cat "$ctx/Dockerfile.body"
} > "$ctx/Dockerfile"
# The legacy builder: it needs no buildx, and its deprecation notice is all it says.
if ! out=$(DOCKER_BUILDKIT=0 docker build --quiet --tag "$tag" --file "$ctx/Dockerfile" "$ctx" 2>&1); then
    echo "$out" >&2
    exit 1
fi
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "$tag: $((size / 1024 / 1024)) MiB"
