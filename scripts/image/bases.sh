# shellcheck shell=bash
# Local stand-ins for the Dockerfile's two base images (docs/image.md), made
# from Debian bookworm's packages because no image registry is reachable
# here. Sourced by scripts/image.sh. They carry what the Dockerfile relies
# on, not the real images' bytes: digests differ.
#
#   rust:1.95-bookworm            Debian bookworm with gcc/libc6-dev (the
#                                 buildpack-deps part the build uses) and this
#                                 machine's Rust 1.95.0 toolchain under
#                                 /usr/local/{rustup,cargo}, as the official
#                                 image lays it out (RUSTUP_HOME, CARGO_HOME).
#   gcr.io/distroless/cc-debian12:nonroot
#                                 glibc, libgcc_s, libstdc++, libgomp, libssl3,
#                                 CA certificates, tzdata, netbase; user and
#                                 group nonroot 65532, /home/nonroot, no shell,
#                                 no package manager; USER 65532.

# Packages of the builder stand-in besides apt's own: the part of rust:*-bookworm
# (buildpack-deps:bookworm) this build uses: gcc as linker and for zstd-sys, ar.
IMG_BUILDER_PACKAGES=ca-certificates,gcc,libc6-dev,binutils
# distroless cc-debian12: base-debian12's packages plus the C/C++ runtime.
IMG_RUNTIME_PACKAGES=base-files,netbase,tzdata,ca-certificates,libc6,libssl3,libgcc-s1,libgomp1,libstdc++6

# The directory of this machine's Rust toolchain whose rustc is
# $IMG_RUST_VERSION (a rustup toolchain, symlinks resolved).
host_toolchain() {
  local rustc dir
  if ! rustc=$(rustup which --toolchain "$IMG_RUST_VERSION" rustc 2>/dev/null); then
    # A machine without it (a CI runner) installs it the ordinary way.
    rustup toolchain install "$IMG_RUST_VERSION" --profile minimal >&2 ||
      die "no Rust $IMG_RUST_VERSION toolchain on this machine and rustup cannot install it"
    rustc=$(rustup which --toolchain "$IMG_RUST_VERSION" rustc)
  fi
  dir=$(cd "$(dirname "$(readlink -f "$rustc")")/.." && pwd)
  "$dir/bin/rustc" --version | grep -q "^rustc $IMG_RUST_VERSION " ||
    die "$dir/bin/rustc is not $IMG_RUST_VERSION"
  printf '%s\n' "$dir"
}

have_image() { pm image exists "$1"; }

make_builder_base() {
  have_image "$IMG_BUILDER_BASE" && { say "stand-in present: $IMG_BUILDER_BASE"; return 0; }
  local toolchain root triple=x86_64-unknown-linux-gnu started=$SECONDS
  [ "$(dpkg --print-architecture)" = amd64 ] || die "the builder stand-in is made for amd64 hosts only"
  toolchain=$(host_toolchain)
  root=$IMG_STATE/bases/builder-root
  rm -rf "$root"
  say "builder stand-in: mmdebstrap bookworm ($IMG_BUILDER_PACKAGES)"
  # shellcheck disable=SC2016 # the hook's $1 is mmdebstrap's, not ours
  mmdebstrap --quiet --variant=apt --include="$IMG_BUILDER_PACKAGES" \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$IMG_SUITE" "$root" >&2
  # This machine reaches crates.io through a TLS-intercepting egress proxy
  # whose CA only the host trusts: the builder trusts what the host trusts
  # (a laptop behind such a proxy needs the same; the real image has only
  # Debian's CAs).
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
  # The toolchain as rustup installs it, without its HTML docs (800 MB).
  local rustup_home=$root/usr/local/rustup cargo_home=$root/usr/local/cargo
  local name=$IMG_RUST_VERSION-$triple
  mkdir -p "$rustup_home/toolchains/$name" "$cargo_home/bin"
  tar -C "$toolchain" --exclude=./share/doc -cf - . | tar -C "$rustup_home/toolchains/$name" -xf -
  printf 'version = "12"\ndefault_toolchain = "%s"\nprofile = "minimal"\n' "$name" >"$rustup_home/settings.toml"
  install -m 0755 "$(readlink -f "$(command -v rustup)")" "$cargo_home/bin/rustup"
  local proxy
  for proxy in cargo rustc rustdoc rust-gdb rust-lldb rust-gdbgui cargo-fmt rustfmt cargo-clippy clippy-driver; do
    ln -s rustup "$cargo_home/bin/$proxy"
  done
  chmod -R a+w "$rustup_home" "$cargo_home"
  say "builder stand-in: podman import as $IMG_BUILDER_BASE"
  # Compressed and the root removed first: podman import keeps a copy of
  # its input while it unpacks it, and three uncompressed copies of 1.2 GB
  # at once are more than a busy machine's disk may have.
  local archive=$IMG_STATE/bases/builder.tar.gz
  tar -C "$root" -cf - . | gzip -1 >"$archive"
  rm -rf "$root"
  pm import --quiet \
    --change "ENV RUSTUP_HOME=/usr/local/rustup" \
    --change "ENV CARGO_HOME=/usr/local/cargo" \
    --change "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV RUST_VERSION=$IMG_RUST_VERSION" \
    --change 'CMD ["bash"]' \
    "$archive" "$IMG_BUILDER_BASE" >/dev/null
  rm -f "$archive"
  say "builder stand-in: made in $((SECONDS - started)) s"
}

# /etc/passwd and /etc/group as distroless has them (nonroot = 65532).
write_distroless_users() {
  local root=$1
  cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
  mkdir -p "$root/home/nonroot" "$root/root" "$root/tmp"
  chown 65532:65532 "$root/home/nonroot"
  chmod 0700 "$root/home/nonroot" "$root/root"
  chmod 1777 "$root/tmp"
}

make_runtime_base() {
  have_image "$IMG_RUNTIME_BASE" && { say "stand-in present: $IMG_RUNTIME_BASE"; return 0; }
  local root started=$SECONDS
  root=$IMG_STATE/bases/runtime-root
  rm -rf "$root"
  say "runtime stand-in: mmdebstrap --variant=extract bookworm ($IMG_RUNTIME_PACKAGES)"
  # extract: the packages' files only, no maintainer scripts, no dpkg or
  # shell in the result (distroless is made the same way, from .debs).
  mmdebstrap --quiet --variant=extract --include="$IMG_RUNTIME_PACKAGES" "$IMG_SUITE" "$root" >&2
  write_distroless_users "$root"
  # What ca-certificates' maintainer script would have made: the bundle.
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' -print0 | sort -z |
    xargs -0 cat >"$root/etc/ssl/certs/ca-certificates.crt"
  ldconfig -r "$root" 2>/dev/null || true
  rm -rf "$root/var/lib/apt" "$root/var/cache/apt" "$root/var/lib/dpkg" "$root/usr/share/doc" "$root/usr/share/man"
  for shell in bin/sh bin/bash bin/dash usr/bin/sh usr/bin/bash usr/bin/dash; do
    [ ! -e "$root/$shell" ] || die "the runtime stand-in has /$shell (distroless has no shell)"
  done
  say "runtime stand-in: podman import as $IMG_RUNTIME_BASE"
  tar -C "$root" -cf - . | pm import --quiet \
    --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    --change "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" \
    --change "USER 65532" \
    --change "WORKDIR /home/nonroot" \
    - "$IMG_RUNTIME_BASE" >/dev/null
  rm -rf "$root"
  say "runtime stand-in: made in $((SECONDS - started)) s"
}
