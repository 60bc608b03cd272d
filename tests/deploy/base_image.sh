#!/usr/bin/env bash
# Makes the local base image docker.io/library/debian:bookworm-slim for `podman build` on a
# machine without a registry: a minimal bookworm root file system built by debootstrap from the
# configured Debian mirror, imported into podman. The rootfs tarball is cached under
# ~/.cache/kvserve so later runs only re-import it (seconds).
# Usage: base_image.sh   (needs root, podman, debootstrap; CONTAINERS_CONF as in containers.md)
set -euo pipefail
cache="${KVSERVE_CONTAINER_CACHE:-$HOME/.cache/kvserve/container}"
tarball="$cache/debian-bookworm-minbase.tar"
image=docker.io/library/debian:bookworm-slim
mkdir -p "$cache"

if podman image exists "$image"; then
  echo "base_image: $image present"
  exit 0
fi

if [ ! -s "$tarball" ]; then
  mirror=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
             2>/dev/null || true)
  if [ -z "$mirror" ]; then  # deb822 sources: the first URIs: line
    mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  fi
  mirror="${mirror:-http://deb.debian.org/debian}"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  echo "base_image: debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
    tail -20 "$cache/debootstrap.log"; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  # Like Debian's official -slim images: no documentation, manual pages or translations, now
  # or in packages installed later in the image.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
  find "$rootfs/usr/share/doc" -mindepth 2 ! -name copyright ! -type d -delete
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
  tar -C "$rootfs" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi
podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$image" >/dev/null
echo "base_image: imported $image from $tarball"
