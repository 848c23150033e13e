# The exporter image for users: built from source, run as non-root on distroless.
#   docker build -t docker-events-exporter .
#   docker run -d --name docker-events-exporter --restart unless-stopped \
#     --group-add "$(stat -c %g /var/run/docker.sock)" --read-only \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro -v dee-state:/var/lib/docker-events-exporter \
#     -p 10050:10050 docker-events-exporter \
#     --docker.state-file /var/lib/docker-events-exporter/state.json \
#     --history.dir /var/lib/docker-events-exporter/history
# scripts/image.sh builds the same runtime stage with no pull (for the tests).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
RUN cargo build --release --locked \
    && strip target/release/docker-events-exporter \
    && mkdir -p /out/state

# glibc, libgcc and CA certificates; no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/docker-events-exporter /usr/local/bin/docker-events-exporter
# Where the state file and the history go: a volume mounted here starts as the nonroot user's.
COPY --from=build --chown=65532:65532 /out/state /var/lib/docker-events-exporter
# nonroot (65532). Reading the socket needs its group: --group-add <gid of docker.sock>.
USER 65532:65532
EXPOSE 10050
# Distroless has no curl: the binary asks its own /-/healthy (on --web.listen-address's port,
# also when that is given as DOCKER_EVENTS_EXPORTER_WEB_LISTEN_ADDRESS).
HEALTHCHECK --interval=30s --timeout=6s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/docker-events-exporter", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/docker-events-exporter"]
