# syntax=docker/dockerfile:1
#
# One image for both services (service-a and service-b differ only by env).
#
#   docker buildx build --platform linux/amd64 -t status-service:dev .
#   docker buildx build --platform linux/arm64 -t status-service:dev .   # Fargate Graviton (cheaper)
#   docker buildx build --platform linux/amd64,linux/arm64 -t <ecr-repo>:<tag> --push .
#
# rustc always runs natively on the build machine ($BUILDPLATFORM) and
# cross-compiles for $TARGETPLATFORM, so a multi-platform build needs no QEMU.
# (A multi-platform build needs a builder that can hold a manifest list: the
# docker-container driver, `docker buildx create --use`, or the containerd image
# store. scripts/deploy.sh builds one platform, matching var.cpu_architecture.)
#
# Dependencies are cached with BuildKit cache mounts (cargo registry and the
# target directory persist between builds on the same builder), so a source
# change recompiles only the workspace crates. Requires BuildKit (default in
# Docker >= 23 and in buildx).

############################ builder ############################
# Pinned by tag; the workspace needs rust-version 1.95 (edition 2024).
# Bookworm (glibc 2.36) matches the distroless cc-debian12 runtime below.
FROM --platform=$BUILDPLATFORM rust:1.95-bookworm AS builder

# Set by BuildKit from --platform: amd64 or arm64.
ARG TARGETARCH

# Linkers and C compilers per Rust target (for crates with build scripts that
# compile C through the `cc` crate). The x86_64-linux-gnu-* / aarch64-linux-gnu-*
# names exist natively on the matching Debian host (package gcc) and come from
# gcc-<triplet> when cross-compiling.
ENV CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER=x86_64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_x86_64_unknown_linux_gnu=x86_64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_x86_64_unknown_linux_gnu=x86_64-linux-gnu-ar \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    CARGO_TERM_COLOR=never

# Map the Docker architecture to the Rust target, install a cross toolchain only
# when target != build architecture, add the Rust std for the target, and record
# the target triple for the build step.
# DL3008 (pin apt versions) is ignored on purpose: these cross packages follow
# Debian bookworm's (glibc) security updates; the base image tag pins the release.
# hadolint ignore=DL3008
RUN set -eux; \
    case "${TARGETARCH}" in \
      amd64) rust_target=x86_64-unknown-linux-gnu;  set -- gcc-x86-64-linux-gnu libc6-dev-amd64-cross ;; \
      arm64) rust_target=aarch64-unknown-linux-gnu; set -- gcc-aarch64-linux-gnu libc6-dev-arm64-cross ;; \
      *) echo "unsupported TARGETARCH='${TARGETARCH}' (expected amd64 or arm64)" >&2; exit 1 ;; \
    esac; \
    if [ "$(dpkg --print-architecture)" != "${TARGETARCH}" ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends "$@"; \
      rm -rf /var/lib/apt/lists/*; \
    fi; \
    rustup target add "${rust_target}"; \
    echo "${rust_target}" > /rust-target

WORKDIR /app

# The build context is an allowlist (.dockerignore): workspace manifests,
# Cargo.lock, build.rs, proto/ and the member crates (".", gateway, services,
# IaC/checks: cargo loads every member to resolve the workspace).
COPY . .

# The target dir lives in a cache mount, so the binary is copied out of it in
# the same RUN. --locked: the committed Cargo.lock is the only resolution.
# sharing=locked serialises concurrent platform builds on one builder.
RUN --mount=type=cache,id=status-service-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=status-service-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=status-service-target,target=/app/target,sharing=locked \
    set -eux; \
    rust_target="$(cat /rust-target)"; \
    cargo build --release --locked -p status-services --bin status-service --target "${rust_target}"; \
    install -D -m 0755 "target/${rust_target}/release/status-service" /out/status-service

############################ runtime ############################
# Distroless "cc": glibc + libgcc_s, no shell, no package manager; the
# :nonroot tag runs as uid/gid 65532. Pinned by tag; for reproducible
# production builds pin the digest too, e.g.
#   gcr.io/distroless/cc-debian12:nonroot@sha256:<digest>
# (`docker buildx imagetools inspect gcr.io/distroless/cc-debian12:nonroot`).
FROM gcr.io/distroless/cc-debian12:nonroot

ARG VCS_REF=unknown
LABEL org.opencontainers.image.source="https://github.com/example/ecs-service-connect-grpc" \
      org.opencontainers.image.title="status-service" \
      org.opencontainers.image.description="service-a / service-b: gRPC status services with a REST gateway, for ECS Fargate + Service Connect TLS" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.revision="${VCS_REF}"

# SERVICE_NAME, SERVER_PORT, PEER_URL, ... come from the task definition.
ENV LOG_FORMAT=json

COPY --from=builder /out/status-service /usr/local/bin/status-service

USER 65532:65532

# service-a listens on 8201, service-b on 8202 (gRPC and REST on one port).
EXPOSE 8201 8202

# Probes the gRPC health service on 127.0.0.1:$SERVER_PORT (no shell or curl
# in this image). ECS uses the task definition's healthCheck, which is the same.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/status-service", "healthcheck"]

ENTRYPOINT ["/usr/local/bin/status-service", "serve"]
