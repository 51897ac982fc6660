#!/usr/bin/env bash
# make check's builds, as the kernel test robot would do them: every C file
# the series touches, compiled in each configuration below.  An object
# that does not compile, or compiles with a warning, fails the run; so does
# a module (an object that needs __this_module) that needs a symbol the
# tree does not export, which modpost would refuse (modpost needs vmlinux,
# which this does not build: a symbol counts as exported if any file of
# the tree exports it by name, or through STANDARD_PARAM_DEF or
# define_dev_printk_level).  Only the touched objects are built, not
# whole kernels.
#   check-build.sh [NAME...]      (default: every configuration)
# Configurations (name: architecture, what it starts from, then fragments;
# -OPT turns OPT off):
#   debian      x86, Debian's own config (linux-config-6.12, pinned in
#               base.pin) + configs/check-debian.config
#   no-hotremove, no-numa, no-memmap-on-memory, no-kunit
#               x86, tinyconfig + configs/main.config with one option off
#   arm64, ppc64le, riscv64
#               each architecture's defconfig + configs/cross.config (+
#               configs/cross-virtio-mem.config where virtio-mem exists)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_pin

declare -A CONF=(
	[debian]="x86 debian check-debian"
	[no-hotremove]="x86 main -MEMORY_HOTREMOVE"
	[no-numa]="x86 main -NUMA"
	[no-memmap-on-memory]="x86 main -MHP_MEMMAP_ON_MEMORY"
	[no-kunit]="x86 main -KUNIT"
	[arm64]="arm64 defconfig cross cross-virtio-mem"
	[ppc64le]="powerpc ppc64le_defconfig cross"
	[riscv64]="riscv defconfig cross cross-virtio-mem"
)
ORDER=(debian no-hotremove no-numa no-memmap-on-memory no-kunit arm64 ppc64le riscv64)
declare -A CROSS=([x86]="" [arm64]=aarch64-linux-gnu- [powerpc]=powerpc64le-linux-gnu-
	[riscv]=riscv64-linux-gnu-)
# The option that builds each object the series touches ("y": always).  A
# touched file that is missing here stops the run: add it.
declare -A OBJ_OPT=(
	[mm/memory_hotplug.o]=MEMORY_HOTPLUG
	[mm/memory_hotplug_kunit.o]=MEMORY_HOTPLUG_KUNIT_TEST
	[mm/page_alloc.o]=y
	[mm/page_isolation.o]=MEMORY_ISOLATION
	[mm/sparse-vmemmap.o]=SPARSEMEM_VMEMMAP
	[mm/vmstat.o]=y
	[drivers/base/memory.o]=MEMORY_HOTPLUG
	[drivers/virtio/virtio_mem.o]=VIRTIO_MEM
	[drivers/firmware/memmap.o]=FIRMWARE_MEMMAP
	[arch/x86/mm/init_64.o]=X86_64
	[arch/x86/mm/init.o]=y
	[arch/x86/kernel/amd_gart_64.o]=GART_IOMMU
	[arch/x86/mm/mem_encrypt_amd.o]=AMD_MEM_ENCRYPT
)

names=("$@")
[ ${#names[@]} -gt 0 ] || names=("${ORDER[@]}")
for n in "${names[@]}"; do
	[ -n "${CONF[$n]+x}" ] || die "unknown configuration '$n' (have: ${ORDER[*]})"
	arch=${CONF[$n]%% *}
	[ -z "${CROSS[$arch]}" ] || command -v "${CROSS[$arch]}gcc" >/dev/null ||
		die "no ${CROSS[$arch]}gcc; run 'make deps-cross' (Debian's gcc cross compilers)"
done
[ -f "$TREE/Makefile" ] || die "no kernel tree in $TREE; run 'make tree' first"

# the series' C files that are objects of their own (not #included by
# another C file, as virtio_mem_kunit.c is)
objs=()
while IFS= read -r f; do
	grep -qs "#include \"${f##*/}\"" "$TREE/${f%/*}"/*.c && continue
	o=${f%.c}.o
	[ -n "${OBJ_OPT[$o]+x}" ] || die "the series touches $f: say in OBJ_OPT which option builds $o"
	objs+=("$o")
done < <(git -C "$TREE" diff --name-only base HEAD -- '*.c' | grep -v '^tools/' || true)
[ ${#objs[@]} -gt 0 ] || die "the series touches no C file?"

# Debian's config, from the package of the version base.pin names
debian_config() {
	local deb dir=$BUILD/out/linux-config
	[ -f "$dir/config" ] && return
	[ -n "${CONFIG_VERSION:-}" ] || die "base.pin names no CONFIG_VERSION (linux-config-6.12)"
	mkdir -p "$dir"
	(cd "$dir" && apt-get download -q "linux-config-6.12=$CONFIG_VERSION" >/dev/null 2>&1) ||
		die "apt-get download linux-config-6.12=$CONFIG_VERSION failed (run 'apt-get update'?)"
	deb=$(ls "$dir"/linux-config-6.12_*.deb)
	dpkg-deb -x "$deb" "$dir/x"
	xz -dc "$dir/x/usr/src/linux-config-6.12/config.amd64_none_amd64.xz" >"$dir/config"
	rm -rf "$dir/x" "$deb"
}

# every symbol exported anywhere in the tree, whatever the architecture
exports=$BUILD/out/check-exports.txt
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
for n in "${names[@]}"; do
	read -r arch start frags <<<"${CONF[$n]}"
	cross=${CROSS[$arch]}
	out=$BUILD/out/check-$n
	log=$out/build.log
	mkdir -p "$out"
	: >"$log"
	cc=${cross}gcc
	! command -v ccache >/dev/null || cc="ccache $cc"
	km() {
		make -C "$TREE" O="$out" ARCH="$arch" ${cross:+CROSS_COMPILE="$cross"} CC="$cc" \
			HOSTCC=gcc -j"$(nproc)" "$@" >>"$log" 2>&1
	}
	# the fragments: files of configs/, or -OPT for one option off
	files=()
	: >"$out/off.config"
	for f in $frags; do
		case $f in
		-*) echo "# CONFIG_${f#-} is not set" >>"$out/off.config" ;;
		*) files+=("$ROOT/configs/$f.config") ;;
		esac
	done
	[ ! -s "$out/off.config" ] || files+=("$out/off.config")
	case $start in
	debian) debian_config; cp "$BUILD/out/linux-config/config" "$out/.config"
		km olddefconfig || die "$n: olddefconfig failed; see $log" ;;
	main) km tinyconfig || die "$n: tinyconfig failed; see $log"
		files=("$ROOT/configs/main.config" "${files[@]}") ;;
	*) km "$start" || die "$n: $start failed; see $log" ;;
	esac
	say "$n: $start + ${frags}"
	(cd "$out" && "$TREE/scripts/kconfig/merge_config.sh" -m -O "$out" .config \
		"${files[@]}") >>"$log" 2>&1 || die "$n: merge_config failed; see $log"
	km olddefconfig || die "$n: olddefconfig failed; see $log"
	# what the fragments ask for must have survived olddefconfig
	lost=()
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) grep -qxF "$line" "$out/.config" || lost+=("$line") ;;
		'# CONFIG_'*' is not set')
			opt=${line#\# }; opt=${opt%% *}
			! grep -q "^$opt=" "$out/.config" || lost+=("$opt unset") ;;
		esac
	done < <(cat "${files[@]}")
	if [ ${#lost[@]} -gt 0 ]; then
		echo "FAIL $n: options lost after olddefconfig: ${lost[*]}"
		failed=$((failed + 1))
		continue
	fi
	for o in "${objs[@]}"; do
		case $o in arch/*) [ "${o#arch/$arch/}" != "$o" ] || continue ;; esac
		opt=${OBJ_OPT[$o]}
		if [ "$opt" != y ] && ! grep -qE "^CONFIG_$opt=[ym]$" "$out/.config"; then
			echo "--   $n: $o (CONFIG_$opt is off)"
			continue
		fi
		rm -f "$out/$o"
		if ! km "$o"; then
			echo "FAIL $n: $o does not build"
			grep -E 'error' "$log" | head -5
			failed=$((failed + 1))
		elif warn=$(grep -E "(^|/)${o%.o}\.c:[0-9]+:[0-9]+: warning" "$log"); then
			echo "FAIL $n: $o builds with warnings"
			echo "$warn" | head -5
			failed=$((failed + 1))
		elif "${cross}nm" -u "$out/$o" | grep -q ' __this_module$' &&
			missing=$(unexported "$cross" "$out/$o") && [ -n "$missing" ]; then
			echo "FAIL $n: $o is a module and needs symbols nothing exports: $missing"
			failed=$((failed + 1))
		else
			echo "ok   $n: $o"
		fi
	done
done
[ "$failed" -eq 0 ] || die "$failed build checks failed"
