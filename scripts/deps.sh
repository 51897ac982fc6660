#!/usr/bin/env bash
# Install what the build, the guest and the harness need from Debian 12.
# The base kernel is pinned exactly (base.pin); QEMU must be 7.2.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_pin
cross=
arm64=
case ${1:-} in
'') ;;
--cross) cross=1 ;;
--arm64) arm64=1 ;;
*) die "unknown argument '$1' (usage: deps.sh [--cross | --arm64])" ;;
esac
pkgs=(build-essential bc bison flex libelf-dev libssl-dev cpio xz-utils perl
	ccache rsync git qemu-system-x86 busybox-static python3 python3-matplotlib e2fsprogs
	python3-ply python3-git)  # the last two: checkpatch.pl's spdxcheck.py
# make check: Debian 12's cross compilers (gcc 12, as the native one) and sparse
[ -z "$cross" ] || pkgs+=(gcc-aarch64-linux-gnu gcc-powerpc64le-linux-gnu gcc-riscv64-linux-gnu sparse)
# the arm64 passes: the cross compiler, QEMU's arm64 system emulator (the
# same 7.2 as qemu-system-x86) and its UEFI firmware
[ -z "$arm64" ] || pkgs+=(gcc-aarch64-linux-gnu qemu-system-arm qemu-efi-aarch64)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ "$(dpkg-query -W -f='${Version}' "$PACKAGE" 2>/dev/null || true)" = "$VERSION" ] || missing+=("$PACKAGE=$VERSION")
# the peer suites in the guest: their results count, so their versions are
# pinned (stress-ng and its libraries are copied into the initramfs; the mm
# selftests link libnuma statically)
for pv in stress-ng=0.15.06-2 libnuma-dev=2.0.16-1; do
	[ "$(dpkg-query -W -f='${Version}' "${pv%%=*}" 2>/dev/null || true)" = "${pv#*=}" ] ||
		missing+=("$pv")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run 'make deps' as root"
	say "installing: ${missing[*]}"
	apt-get update -q >/dev/null || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		--allow-downgrades "${missing[@]}" >/dev/null || die "apt-get install failed for: ${missing[*]}"
fi
qv=$(qemu-system-x86_64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
[ "$qv" = 7.2 ] || die "QEMU: expected 7.2 (Debian 12's qemu-system-x86), found ${qv:-none}"
if [ -n "$arm64" ]; then
	qv=$(qemu-system-aarch64 --version 2>/dev/null | sed -n 's/^QEMU emulator version \([0-9]*\.[0-9]*\).*/\1/p')
	[ "$qv" = 7.2 ] || die "QEMU: expected 7.2 (Debian 12's qemu-system-arm), found ${qv:-none}"
fi
"$ROOT/scripts/base.sh" --verify
