#!/usr/bin/env bash
# Build the guest initramfs from Debian's busybox-static and guest/, with the
# memory-hotplug kselftests of build/linux (the tree with the series) under
# /kselftest/ in the installed layout.
#   initramfs.sh OUTPUT.cpio [EXTRA-DIR]
# EXTRA-DIR, when given, is copied into the image root.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
out=${1:?usage: initramfs.sh OUTPUT.cpio [EXTRA-DIR]}
extra=${2:-}
bb=/bin/busybox
[ -x "$bb" ] || die "no $bb; run 'apt-get install busybox-static'"
if ldd "$bb" >/dev/null 2>&1; then
	die "$bb is dynamically linked; run 'apt-get install busybox-static'"
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,proc,sys,tmp,root}
cp "$bb" "$root/bin/busybox"
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
