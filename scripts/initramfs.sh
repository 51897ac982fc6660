#!/usr/bin/env bash
# Build the guest initramfs from Debian's busybox-static and guest/, with the
# memory-hotplug kselftests of build/linux (the tree with the series) under
# /kselftest/ in the installed layout.
#   initramfs.sh [-a arm64] OUTPUT.cpio [EXTRA-DIR]
# EXTRA-DIR, when given, is copied into the image root.  -a arm64: the same
# image with Debian's arm64 busybox-static, of the version the machine has
# for amd64 (BUSYBOX_VERSION), downloaded once into build/guest/debs/ with
# an apt state of its own: the machine's apt sources, its arm64 indexes,
# nothing added to dpkg's architectures.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
BUSYBOX_VERSION=1:1.35.0-4+deb12u1+b1
usage="usage: initramfs.sh [-a arm64] OUTPUT.cpio [EXTRA-DIR]"
arch=
if [ "${1:-}" = -a ]; then
	arch=${2:?$usage}
	shift 2
	[ "$arch" = arm64 ] || die "unknown architecture '$arch' (have: arm64)"
fi
out=${1:?$usage}
extra=${2:-}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
bb=/bin/busybox
if [ "$arch" = arm64 ]; then
	debs=$BUILD/guest/debs
	deb=$debs/busybox-static_${BUSYBOX_VERSION#*:}_arm64.deb
	if [ ! -f "$deb" ]; then
		say "downloading busybox-static $BUSYBOX_VERSION for arm64"
		apt=$debs/apt
		mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial"
		opts=(-o Dir::State::Lists="$apt/lists" -o Dir::Cache="$apt/cache"
			-o APT::Architecture=arm64 -o APT::Architectures=arm64)
		apt-get "${opts[@]}" update -q >"$debs/apt.log" 2>&1 ||
			die "apt-get update for arm64 failed; see ${debs#"$ROOT"/}/apt.log"
		(cd "$debs" && apt-get "${opts[@]}" download "busybox-static=$BUSYBOX_VERSION") \
			>>"$debs/apt.log" 2>&1 ||
			die "could not download busybox-static=$BUSYBOX_VERSION for arm64; see ${debs#"$ROOT"/}/apt.log"
		mv "$debs/busybox-static_"*"_arm64.deb" "$deb.tmp" && mv "$deb.tmp" "$deb"
	fi
	dpkg-deb -x "$deb" "$root/deb" || die "cannot unpack $deb"
	bb=$root/deb/bin/busybox
	readelf -h "$bb" 2>/dev/null | grep -q 'Machine: *AArch64' && ! readelf -l "$bb" | grep -q INTERP ||
		die "busybox from $deb is not a static arm64 executable"
else
	[ -x "$bb" ] || die "no $bb; run 'apt-get install busybox-static'"
	if ldd "$bb" >/dev/null 2>&1; then
		die "$bb is dynamically linked; run 'apt-get install busybox-static'"
	fi
fi
mkdir -p "$root"/{bin,dev,proc,sys,tmp,root}
cp "$bb" "$root/bin/busybox"
rm -rf "$root/deb"
install -m 0755 "$ROOT/guest/init" "$root/init"
install -m 0755 "$ROOT/guest/agent" "$root/agent"
st=$TREE/tools/testing/selftests
if [ -d "$st/memory-hotplug" ]; then
	mkdir -p "$root/kselftest/memory-hotplug" "$root/kselftest/kselftest"
	install -m 0755 "$st"/memory-hotplug/*.sh "$root/kselftest/memory-hotplug/"
	install -m 0644 "$st/kselftest/ktap_helpers.sh" "$root/kselftest/kselftest/"
fi
if [ -n "$extra" ] && [ -d "$extra" ]; then
	cp -a "$extra"/. "$root"/
fi
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$out.tmp"
mv "$out.tmp" "$out"
