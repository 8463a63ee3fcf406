# syntax=docker/dockerfile:1
#
# setpoint as a small static image: the one binary, built against musl on Alpine (statically
# linked: the musl targets link the C runtime in), on distroless/static, which adds only CA
# certificates (for an HTTPS Prometheus), an /etc/passwd with the nonroot user (65532) and tzdata.
# No shell, no package manager.
#
#   docker build -t registry.example.com/setpoint:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t registry.example.com/setpoint:0.1.0 --push .
#
# BuildKit (the default builder since Docker 23) is needed for the cache mounts.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-alpine AS build
# gcc and musl-dev: aws-lc-sys (rustls' crypto provider) compiles C; linux-headers for its
# syscall headers.
RUN apk add --no-cache gcc musl-dev linux-headers
WORKDIR /src
COPY . .
# Smaller than the crate's own release profile, which keeps line tables for backtraces.
ENV CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_LTO=thin
# The last line fails the build if the binary needs any shared library: the runtime image has none.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin setpoint \
 && cp target/release/setpoint /setpoint \
 && if readelf -d /setpoint | grep -q NEEDED; then readelf -d /setpoint; exit 1; fi

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /setpoint /setpoint
USER 65532:65532
# The admin port: /healthz, /readyz, /metrics, /recommendations.
EXPOSE 9464
ENTRYPOINT ["/setpoint"]
CMD ["--help"]
