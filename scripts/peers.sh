#!/usr/bin/env bash
# The peer suites, as an initramfs that the guests of the 'peers' scenario
# boot: the base image (initramfs.sh) followed by a second archive with
#   /bin/bash and Debian's stress-ng, with the shared libraries they load;
#   /kselftest/memory-hotplug/mem-on-off-test.sh (in the base image);
#   /kselftest/mm/: mm selftests of build/linux, built statically.
# The kernel unpacks concatenated archives in turn.
#   peers.sh BASE.cpio OUTPUT.cpio
set -euo pipefail
. "$(dirname "$0")/lib.sh"
base=${1:?usage: peers.sh BASE.cpio OUTPUT.cpio}
out=${2:?usage: peers.sh BASE.cpio OUTPUT.cpio}
[ -f "$base" ] || die "no $base; run 'make initramfs' first"
[ -f "$TREE/Makefile" ] || die "no kernel tree in $TREE; run 'make tree' first"
for tool in /bin/bash /usr/bin/stress-ng; do
	[ -x "$tool" ] || die "no $tool; run 'make deps'"
done
[ -f /usr/lib/x86_64-linux-gnu/libnuma.a ] || die "no static libnuma; run 'make deps'"

# The kernel's UAPI headers, as the selftests want them, outside the tree
hdr=$BUILD/out/headers
if [ ! -f "$hdr/usr/include/linux/mman.h" ] || [ "$TREE/Makefile" -nt "$hdr/usr/include/linux/mman.h" ]; then
	say "installing the UAPI headers into ${hdr#"$ROOT"/}"
	mkdir -p "$BUILD/out"
	make -C "$TREE" O="$hdr" headers >"$BUILD/out/headers.log" 2>&1 ||
		die "make headers failed; see build/out/headers.log"
fi

# The mm selftests the peers scenario runs (harness/scenarios/peers.py,
# MM_TESTS: hugetlb, compaction, migration, memory failure), static
mm=$BUILD/out/mm-selftests
mkdir -p "$mm"
tests=(compaction_test migration hugepage-mmap hugepage-shm map_hugetlb hugepage-mremap
	hugepage-vmemmap hugetlb-madvise hugetlb_dio hugetlb_fault_after_madv
	hugetlb_madv_vs_map hugetlb-soft-offline)
say "building the mm selftests (static): ${tests[*]}"
make -C "$TREE/tools/testing/selftests/mm" OUTPUT="$mm" KHDR_INCLUDES="-isystem $hdr/usr/include" \
	LDFLAGS=-static -j"$(nproc)" "${tests[@]/#/$mm/}" >"$mm/build.log" 2>&1 ||
	die "building the mm selftests failed; see ${mm#"$ROOT"/}/build.log"

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/kselftest/mm" "$root/sbin"
for t in "${tests[@]}"; do
	install -m 0755 "$mm/$t" "$root/kselftest/mm/"
done
# mem-on-off-test.sh calls /sbin/modprobe; the error-injection module is
# built in, so busybox's modprobe failing quietly is what it expects
ln -s /bin/busybox "$root/sbin/modprobe"

# ELF programs with the libraries and the loader they need
copy_elf() {
	install -D -m 0755 "$1" "$root$1"
	ldd "$1" | awk '/=> \// { print $3 } /^\t\/.*ld-linux/ { print $1 }' |
	while read -r lib; do
		[ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
	done
}
copy_elf /bin/bash
copy_elf /usr/bin/stress-ng

(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$out.peers"
cat "$base" "$out.peers" >"$out.tmp"
rm -f "$out.peers"
mv "$out.tmp" "$out"
say "wrote ${out#"$ROOT"/} ($(du -h "$out" | cut -f1))"
