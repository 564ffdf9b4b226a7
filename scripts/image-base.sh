#!/usr/bin/env bash
# Makes a Node base image for the Dockerfile without any image registry: a Debian bookworm
# (minbase) root made with debootstrap from Debian's mirror, plus this machine's Node.js and npm,
# and the "node" user (uid/gid 1000) the official node images have. Used where public registries
# do not answer (CI here); elsewhere the Dockerfile's default base (node:*-bookworm-slim) is pulled.
#
#   scripts/image-base.sh [TAG]      # prints the tag; builds it only when Docker does not have it
#
# Needs root, debootstrap and a running Docker engine (Debian: apt-get install debootstrap docker.io).
set -euo pipefail
node_version=$(node -p 'process.versions.node')
tag=${1:-crm-node-base:${node_version}-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi

root=$(mktemp -d /tmp/crm-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >&2
# Node.js and npm as this machine has them (the binary needs only libc, libstdc++ and libgcc,
# which minbase has)
node_bin=$(command -v node)
npm_dir=$(dirname "$(readlink -f "$(command -v npm)")")/..
install -m 0755 "$node_bin" "$root/usr/local/bin/node"
mkdir -p "$root/usr/local/lib/node_modules"
cp -a "$(readlink -f "$npm_dir")" "$root/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$root/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$root/usr/local/bin/npx"
chroot "$root" /bin/sh -c 'groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node'
# no package lists or caches in the image
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  --message "debootstrap bookworm minbase + node ${node_version}" - "$tag" >&2
echo "$tag"
