#!/usr/bin/env bash
# Cross-build every C file of the kernel that the series touches, for the
# architectures whose memory hotplug the generic changes reach, with Debian's
# cross compilers: each architecture's defconfig + configs/cross.config (+
# configs/cross-virtio-mem.config where virtio-mem exists; elsewhere the
# files under drivers/virtio/ are left out).  A file that does not compile,
# or compiles with a warning, fails the run; so does a module (an object that
# needs __this_module) that needs a symbol the tree does not export, which
# modpost would refuse (it needs vmlinux, which this does not build: a
# symbol counts as exported if any file exports it by name, or through
# STANDARD_PARAM_DEF or define_dev_printk_level).
#   cross.sh [ARCH...]     (default: arm64 powerpc riscv)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

declare -A CROSS=([arm64]=aarch64-linux-gnu- [powerpc]=powerpc64le-linux-gnu-
	[riscv]=riscv64-linux-gnu-)
declare -A DEFCONFIG=([arm64]=defconfig [powerpc]=ppc64le_defconfig [riscv]=defconfig)
declare -A VIRTIO_MEM=([arm64]=1 [riscv]=1)
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(arm64 powerpc riscv)
for a in "${arches[@]}"; do
	[ -n "${CROSS[$a]+x}" ] || die "unknown architecture '$a' (have: ${!CROSS[*]})"
	command -v "${CROSS[$a]}gcc" >/dev/null ||
		die "no ${CROSS[$a]}gcc; run 'make deps-cross' (Debian's gcc cross compilers)"
done
[ -f "$TREE/Makefile" ] || die "no kernel tree in $TREE; run 'make tree' first"

# the series' C files outside arch/ and tools/ that are objects of their
# own (not #included by another C file, as virtio_mem_kunit.c is)
files=()
while IFS= read -r f; do
	grep -qs "#include \"${f##*/}\"" "$TREE/${f%/*}"/*.c || files+=("$f")
done < <(git -C "$TREE" diff --name-only base HEAD -- '*.c' | grep -vE '^(tools|arch)/' || true)
[ ${#files[@]} -gt 0 ] || die "the series touches no C file outside arch/ and tools/?"

# every symbol exported anywhere in the tree, whatever the architecture
exports=$BUILD/out/cross-exports.txt
mkdir -p "${exports%/*}"
{
	git -C "$TREE" grep -hoE 'EXPORT_(PER_CPU_)?SYMBOL[A-Z_]*\([A-Za-z0-9_]+\)' \
		-- '*.c' '*.S' '*.h' | sed -E 's/.*\(([A-Za-z0-9_]+)\)/\1/'
	git -C "$TREE" grep -hoE '^STANDARD_PARAM_DEF\([a-z0-9_]+' -- kernel/params.c |
		sed 's/.*(/param_ops_/'
	git -C "$TREE" grep -hoE '^define_dev_printk_level\([a-z_]+' -- drivers/base/core.c |
		sed 's/.*(//'
} | LC_ALL=C sort -u >"$exports"

# the symbols a module object needs that nothing exports
unexported() {
	"${1}nm" -u "$2" | awk '{print $2}' | grep -vxE '\.TOC\.|__this_module' | LC_ALL=C sort -u |
		LC_ALL=C comm -23 - "$exports" | tr '\n' ' '
}

failed=0
for a in "${arches[@]}"; do
	out=$BUILD/out/cross-$a
	log=$out/build.log
	mkdir -p "$out"
	: >"$log"
	km() {
		make -C "$TREE" O="$out" ARCH="$a" CROSS_COMPILE="${CROSS[$a]}" -j"$(nproc)" "$@" \
			>>"$log" 2>&1
	}
	frags=("$ROOT/configs/cross.config")
	[ -z "${VIRTIO_MEM[$a]:-}" ] || frags+=("$ROOT/configs/cross-virtio-mem.config")
	say "$a: ${DEFCONFIG[$a]} + ${frags[*]##*/}"
	km "${DEFCONFIG[$a]}" || die "$a: ${DEFCONFIG[$a]} failed; see $log"
	(cd "$out" && "$TREE/scripts/kconfig/merge_config.sh" -m -O "$out" .config \
		"${frags[@]}") >>"$log" 2>&1 || die "$a: merge_config failed; see $log"
	km olddefconfig || die "$a: olddefconfig failed; see $log"
	lost=()
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) grep -qx "$line" "$out/.config" || lost+=("$line") ;;
		'# CONFIG_'*' is not set')
			opt=${line#\# }; opt=${opt%% *}
			! grep -q "^$opt=" "$out/.config" || lost+=("$opt unset") ;;
		esac
	done < <(cat "${frags[@]}")
	if [ ${#lost[@]} -gt 0 ]; then
		echo "FAIL $a: options lost after olddefconfig: ${lost[*]}"
		failed=$((failed + 1))
		continue
	fi
	objs=()
	for f in "${files[@]}"; do
		[ -n "${VIRTIO_MEM[$a]:-}" ] || [ "${f#drivers/virtio/}" = "$f" ] || continue
		objs+=("${f%.c}.o")
	done
	say "$a: building ${objs[*]}"
	for o in "${objs[@]}"; do
		rm -f "$out/$o"
		if ! km "$o"; then
			echo "FAIL $a: $o does not build"
			grep -E 'error' "$log" | head -5
			failed=$((failed + 1))
		elif warn=$(grep -E "(^|/)${o%.o}\.c:[0-9]+:[0-9]+: warning" "$log"); then
			echo "FAIL $a: $o builds with warnings"
			echo "$warn" | head -5
			failed=$((failed + 1))
		elif "${CROSS[$a]}nm" -u "$out/$o" | grep -q ' __this_module$' &&
			missing=$(unexported "${CROSS[$a]}" "$out/$o") && [ -n "$missing" ]; then
			echo "FAIL $a: $o is a module and needs symbols nothing exports: $missing"
			failed=$((failed + 1))
		else
			echo "ok   $a: $o"
		fi
	done
done
[ "$failed" -eq 0 ] || die "$failed cross-build checks failed"
