#!/usr/bin/env bash
# deploy/container/debian-base.sh -- make a debian:12 base image from
# Debian's own packages, for hosts that reach Debian's archive but no
# container registry. debootstrap installs a minimal bookworm (the
# "minbase" variant: essential and required packages plus apt) into a
# temporary directory, which is imported as one layer.
#
#   deploy/container/debian-base.sh [TAG]     default TAG localhost/debian:12
#
# Then build with --build-arg DEBIAN=TAG (scripts/container-test does).
# Needs root (debootstrap), debootstrap and podman.
set -euo pipefail
tag=${1:-localhost/debian:12}
for t in debootstrap podman; do
    command -v "$t" >/dev/null || { echo "debian-base: $t not found (Debian package $t)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "debian-base: debootstrap needs root" >&2; exit 2; }
root=$(mktemp -d "${TMPDIR:-/tmp}/debian-base-XXXXXX")
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" >&2
# The updates and security suites, as in Debian's own images, from the
# archive debootstrap used.
mirror=$(awk '$1 == "deb" { print $2; exit }' "$root/etc/apt/sources.list")
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$mirror" "$mirror" "${mirror%/debian}/debian-security" >"$root/etc/apt/sources.list"
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
tar -C "$root" --numeric-owner -c . \
    | podman import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - "$tag"
