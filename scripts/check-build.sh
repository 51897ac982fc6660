#!/usr/bin/env bash
# make check's builds, as the kernel test robot would do them: every C file
# the series touches, compiled in each configuration below.  An object
# that does not compile, or whose build prints a warning (in any file: the
# C files it #includes and the headers too), fails the run; so does a
# module (an object that needs __this_module) that needs a symbol the tree
# does not export, or exports into a namespace the module does not import,
# which modpost would refuse.  modpost needs vmlinux, which this does not
# build: a symbol counts as exported if a file of the tree exports it
# (EXPORT_SYMBOL*, EXPORT_SYMBOL_IF_KUNIT into EXPORTED_FOR_KUNIT_TESTING,
# EXPORT_STATIC_CALL*, STANDARD_PARAM_DEF, define_dev_printk_level, x86's
# retpoline thunks).  Only the touched objects are built, not whole
# kernels.
#   check-build.sh [NAME...]      (default: every configuration)
# Configurations (name: architecture, what it starts from, then fragments;
# -OPT turns OPT off; ~OPT: OPT goes off with them, and must).  An option
# the fragments set that olddefconfig drops fails the configuration,
# unless it is named ~OPT:
#   debian      x86, Debian's own config (linux-config-6.12, pinned in
#               base.pin) + configs/check-debian.config
#   no-hotplug, no-hotremove, no-numa, no-memmap-on-memory, no-kunit
#               x86, tinyconfig + configs/main.config with one option off
#               (MHP_MEMMAP_ON_MEMORY has no prompt: on x86-64 it goes off
#               with SPARSEMEM_VMEMMAP, which X86_5LEVEL selects)
#   kasan       x86, tinyconfig + configs/main.config, debug.config and
#               kasan.config (the kernel of make test-full's KASAN pass)
#   i386        x86 32-bit, i386_defconfig (no memory hotplug there: the
#               shared x86 and mm code)
#   arm64, ppc64le, riscv64
#               each architecture's defconfig + configs/cross.config (+
#               configs/cross-virtio-mem.config where virtio-mem exists)
#   arm64-64k   arm64 as above with 64 KiB pages (configs/arm64-64k.config):
#               the page size whose memory block is a single pageblock
#               (16 KiB pages are built whole by make kernels-arm64)
set -euo pipefail
. "$(dirname "$0")/lib.sh"
load_pin

declare -A CONF=(
	[debian]="x86 debian check-debian"
	[no-hotplug]="x86 main -MEMORY_HOTPLUG ~MEMORY_HOTREMOVE ~MHP_MEMMAP_ON_MEMORY ~ARCH_MEMORY_PROBE
		~ACPI_HOTPLUG_MEMORY ~MEMORY_NOTIFIER_ERROR_INJECT ~VIRTIO_MEM ~MEMORY_HOTPLUG_KUNIT_TEST
		~VIRTIO_MEM_KUNIT_TEST"
	[no-hotremove]="x86 main -MEMORY_HOTREMOVE ~VIRTIO_MEM ~MEMORY_HOTPLUG_KUNIT_TEST
		~VIRTIO_MEM_KUNIT_TEST"
	[no-numa]="x86 main -NUMA ~X86_64_ACPI_NUMA"
	[no-memmap-on-memory]="x86 main -X86_5LEVEL -SPARSEMEM_VMEMMAP ~MHP_MEMMAP_ON_MEMORY"
	[no-kunit]="x86 main -KUNIT ~LIST_KUNIT_TEST ~MEMORY_HOTPLUG_KUNIT_TEST ~VIRTIO_MEM_KUNIT_TEST"
	[kasan]="x86 main debug kasan"
	[i386]="x86 i386_defconfig"
	[arm64]="arm64 defconfig cross cross-virtio-mem"
	[ppc64le]="powerpc ppc64le_defconfig cross"
	[riscv64]="riscv defconfig cross cross-virtio-mem"
	[arm64-64k]="arm64 defconfig cross cross-virtio-mem arm64-64k"
)
ORDER=(debian no-hotplug no-hotremove no-numa no-memmap-on-memory no-kunit kasan i386 arm64 ppc64le
	riscv64 arm64-64k)
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
	[arch/arm64/mm/mmu.o]=y
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

# Debian's config, from the package of the version base.pin names (kept
# per version, so that a new pin fetches its own)
debian_config() {
	[ -n "${CONFIG_VERSION:-}" ] || die "base.pin names no CONFIG_VERSION (linux-config-6.12)"
	local deb dir=$BUILD/out/linux-config-$CONFIG_VERSION
	[ -f "$dir/config" ] && return
	mkdir -p "$dir"
	(cd "$dir" && apt-get download -q "linux-config-6.12=$CONFIG_VERSION" >/dev/null 2>&1) ||
		die "apt-get download linux-config-6.12=$CONFIG_VERSION failed: run 'apt-get update'; if Debian's archive no longer has it (it keeps only the newest), pin the version 'apt-cache policy linux-config-6.12' shows as CONFIG_VERSION in base.pin"
	deb=$(ls "$dir"/linux-config-6.12_*.deb)
	dpkg-deb -x "$deb" "$dir/x"
	xz -dc "$dir/x/usr/src/linux-config-6.12/config.amd64_none_amd64.xz" >"$dir/config"
	rm -rf "$dir/x" "$deb"
}

# every symbol exported anywhere in the tree, whatever the architecture,
# as "SYMBOL NAMESPACE" ("-": none)
exports=$BUILD/out/check-exports.txt
mkdir -p "${exports%/*}"
{
	git -C "$TREE" grep -hoE 'EXPORT_(PER_CPU_)?SYMBOL[A-Z_]*\([A-Za-z0-9_]+(, *[A-Za-z0-9_]+)?\)' \
		-- '*.c' '*.S' '*.h' | sed -E '
			s/^EXPORT_SYMBOL_IF_KUNIT\(([A-Za-z0-9_]+)\)$/\1 EXPORTED_FOR_KUNIT_TESTING/
			s/^EXPORT_[A-Z_]*\(([A-Za-z0-9_]+), *([A-Za-z0-9_]+)\)$/\1 \2/
			s/^EXPORT_[A-Z_]*\(([A-Za-z0-9_]+)\)$/\1 -/'
	git -C "$TREE" grep -hoE 'EXPORT_STATIC_CALL[A-Z_]*\([a-z0-9_]+\)' -- '*.c' |
		sed -E 's/.*\(([a-z0-9_]+)\)/__SCT__\1 -\n__SCK__\1 -/'
	git -C "$TREE" grep -hoE '^STANDARD_PARAM_DEF\([a-z0-9_]+' -- kernel/params.c |
		sed 's/.*(/param_ops_/; s/$/ -/'
	git -C "$TREE" grep -hoE '^define_dev_printk_level\([a-z_]+' -- drivers/base/core.c |
		sed 's/.*(//; s/$/ -/'
} | LC_ALL=C sort -u >"$exports"

# what modpost would refuse of a module object: a symbol it needs that
# nothing exports, or from a namespace it does not import
unexported() {  # unexported CROSS OBJ
	local sym ns imports
	imports=$("${1}objcopy" -O binary --only-section=.modinfo "$2" /dev/stdout 2>/dev/null |
		tr '\0' '\n' | sed -n 's/^import_ns=//p')
	"${1}nm" -u "$2" | awk '{print $2}' | grep -vxE '\.TOC\.|__this_module' | LC_ALL=C sort -u |
	while read -r sym; do
		case $sym in  # arch/x86/lib/retpoline.S exports these through macros
		__x86_indirect_thunk_* | __x86_indirect_call_thunk_* | __x86_indirect_jump_thunk_* |\
		__x86_return_thunk) continue ;;
		esac
		ns=$(awk -v s="$sym" '$1 == s { print $2 }' "$exports" | head -1)
		if [ -z "$ns" ]; then
			printf '%s ' "$sym"
		elif [ "$ns" != - ] && ! grep -qxF "$ns" <<<"$imports"; then
			printf '%s (namespace %s, not imported) ' "$sym" "$ns"
		fi
	done
}

failed=0
for n in "${names[@]}"; do
	read -r arch start frags <<<"$(xargs <<<"${CONF[$n]}")"
	cross=${CROSS[$arch]}
	out=$BUILD/out/check-$n
	log=$out/build.log
	mkdir -p "$out"
	: >"$log"
	cc=${cross}gcc
	! command -v ccache >/dev/null || cc="ccache $cc"
	km() {
		make -C "$TREE" O="$out" ARCH="$arch" ${cross:+CROSS_COMPILE="$cross"} CC="$cc" \
			HOSTCC=gcc -j"$(nproc)" "$@" >>"${klog:-$log}" 2>&1
	}
	# the fragments: files of configs/, -OPT for one option off, ~OPT
	files=()
	offs=() mustoff=()
	: >"$out/off.config"
	for f in $frags; do
		case $f in
		-*) echo "# CONFIG_${f#-} is not set" >>"$out/off.config"; offs+=("${f#-}") ;;
		'~'*) mustoff+=("${f#\~}") ;;
		*) files+=("$ROOT/configs/$f.config") ;;
		esac
	done
	[ ! -s "$out/off.config" ] || files+=("$out/off.config")
	case $start in
	debian) debian_config; cp "$BUILD/out/linux-config-$CONFIG_VERSION/config" "$out/.config"
		km olddefconfig || die "$n: olddefconfig failed; see $log" ;;
	main) km tinyconfig || die "$n: tinyconfig failed; see $log"
		files=("$ROOT/configs/main.config" "${files[@]}") ;;
	*) km "$start" || die "$n: $start failed; see $log" ;;
	esac
	say "$n: $start + ${frags}"
	[ ${#files[@]} -eq 0 ] || (cd "$out" && "$TREE/scripts/kconfig/merge_config.sh" -m -O "$out" \
		.config "${files[@]}") >>"$log" 2>&1 || die "$n: merge_config failed; see $log"
	km olddefconfig || die "$n: olddefconfig failed; see $log"
	# what the fragments ask for (the last line for an option wins) must
	# have survived olddefconfig, except the options named ~OPT, which
	# must have gone
	declare -A want=()
	while IFS= read -r line; do
		case $line in
		CONFIG_*=*) want[${line%%=*}]=$line ;;
		'# CONFIG_'*' is not set') opt=${line#\# }; want[${opt%% *}]=$line ;;
		esac
	done < <([ ${#files[@]} -eq 0 ] || cat "${files[@]}")
	for opt in "${mustoff[@]}"; do unset "want[CONFIG_$opt]"; done
	lost=()
	for opt in "${!want[@]}"; do
		line=${want[$opt]}
		case $line in
		CONFIG_*) grep -qxF "$line" "$out/.config" || lost+=("$line") ;;
		*) ! grep -q "^$opt=" "$out/.config" || lost+=("$line") ;;
		esac
	done
	for opt in "${mustoff[@]}"; do
		! grep -q "^CONFIG_$opt=" "$out/.config" || lost+=("CONFIG_$opt (~$opt) is still on")
	done
	unset want
	if [ ${#lost[@]} -gt 0 ]; then
		echo "FAIL $n: options lost after olddefconfig: ${lost[*]}"
		failed=$((failed + 1))
		continue
	fi
	[ ${#mustoff[@]} -eq 0 ] || echo "--   $n: off with ${offs[*]}: ${mustoff[*]}"
	# the build's own tools and headers first, so that each object's log
	# has only what building that object prints
	km prepare || die "$n: make prepare failed; see $log"
	for o in "${objs[@]}"; do
		case $o in arch/*) [ "${o#arch/"$arch"/}" != "$o" ] || continue ;; esac
		opt=${OBJ_OPT[$o]}
		if [ "$opt" != y ] && ! grep -qE "^CONFIG_$opt=[ym]$" "$out/.config"; then
			echo "--   $n: $o (CONFIG_$opt is off)"
			continue
		fi
		rm -f "$out/$o"
		olog=$out/${o//\//_}.log
		: >"$olog"
		if ! klog=$olog km "$o"; then
			echo "FAIL $n: $o does not build (log: $olog)"
			grep -E 'error' "$olog" | head -5
			failed=$((failed + 1))
		elif warn=$(grep -E '^[^ :]+:[0-9]+:[0-9]+: warning' "$olog"); then
			echo "FAIL $n: $o builds with warnings (log: $olog)"
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
