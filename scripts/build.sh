#!/usr/bin/env bash
# Build a kernel from build/linux out of tree.
#   build.sh [-a ARCH] [-c CONFIG]... [-o OUTDIR] [-t TREE] [--partial]
# -a: x86_64 (default) or arm64 (cross-built with Debian's
# gcc-aarch64-linux-gnu).  Each -c names a fragment in configs/ (default:
# main).  The fragments are
# merged onto 'tinyconfig'; after 'olddefconfig' every option they set must
# have survived, otherwise the build stops and names the ones that did not.
# --partial (for building the series patch by patch): options whose symbol
# the tree does not define yet are only listed.
# -t builds another tree than build/linux (make kernel-stock: build/stock,
# the untouched base).
# Output: OUTDIR/arch/x86/boot/bzImage (arm64: OUTDIR/arch/arm64/boot/Image);
# full log in OUTDIR/build.log.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

configs=()
out=
partial=
arch=x86_64
while [ $# -gt 0 ]; do
	case $1 in
	-a) arch=$2; shift 2 ;;
	-c) configs+=("$2"); shift 2 ;;
	-o) out=$2; shift 2 ;;
	-t) TREE=$(realpath -m "$2"); shift 2 ;;
	--partial) partial=1; shift ;;
	*) die "unknown argument '$1' (usage: build.sh [-a ARCH] [-c CONFIG]... [-o OUTDIR] [-t TREE] [--partial])" ;;
	esac
done
case $arch in
x86_64) karch=x86; cross=; target=bzImage; image=arch/x86/boot/bzImage ;;
arm64)
	karch=arm64; cross=aarch64-linux-gnu-; target=Image; image=arch/arm64/boot/Image
	command -v ${cross}gcc >/dev/null ||
		die "no ${cross}gcc; run 'apt-get install gcc-aarch64-linux-gnu'" ;;
*) die "unknown architecture '$arch' (have: x86_64 arm64)" ;;
esac
[ ${#configs[@]} -gt 0 ] || configs=(main)
[ -n "$out" ] || out=$BUILD/out/$(IFS=+; echo "${configs[*]}")
out=$(realpath -m "$out")  # make -C changes directory: O= must be absolute
[ -f "$TREE/Makefile" ] || die "no kernel tree in $TREE; run 'make tree' (or 'make kernel-stock') first"
frags=()
for c in "${configs[@]}"; do
	f=$ROOT/configs/$c.config
	[ -f "$f" ] || die "unknown config '$c': no file configs/$c.config (have: $(cd "$ROOT/configs" && ls -- *.config | sed 's/\.config$//' | xargs))"
	frags+=("$f")
done

mkdir -p "$out"
log=$out/build.log
: >"$log"
cc=${cross}gcc
if command -v ccache >/dev/null; then
	cc="ccache ${cross}gcc"
	export CCACHE_BASEDIR=$ROOT CCACHE_NOHASHDIR=1
	ccache -M 8G >/dev/null 2>&1 || true
fi
# Reproducible: the same tree and configs give the same bzImage on any
# machine and in any session, so a sha256 names what was built (the bench
# resumes an interrupted run only with the kernels that took its samples).
export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 2026" KBUILD_BUILD_USER=memmap-on-memory \
	KBUILD_BUILD_HOST=build KBUILD_BUILD_VERSION=1
kmake() {
	make -C "$TREE" O="$out" ARCH="$karch" CROSS_COMPILE="$cross" CC="$cc" HOSTCC=gcc \
		-j"$(nproc)" "$@" >>"$log" 2>&1
}

say "configuring $out (tinyconfig + ${configs[*]})"
kmake tinyconfig || die "tinyconfig failed; see $log"
(cd "$out" && "$TREE/scripts/kconfig/merge_config.sh" -m -O "$out" .config "${frags[@]}") >>"$log" 2>&1 ||
	die "merge_config failed; see $log"
kmake olddefconfig || die "olddefconfig failed; see $log"

defined() {  # is CONFIG_$1 a symbol of this tree?
	grep -rqE --include='Kconfig*' "^[[:space:]]*(menu)?config[[:space:]]+${1#CONFIG_}\$" "$TREE"
}
# What the fragments want, a later fragment overriding an earlier one (the
# nothp fragment unsets options that main sets): CONFIG_X -> value or "n".
declare -A want=()
order=()
while IFS= read -r line; do
	case $line in
	CONFIG_*=*) opt=${line%%=*}; val=${line#*=} ;;
	'# CONFIG_'*' is not set') opt=${line#\# }; opt=${opt%% *}; val=n ;;
	*) continue ;;
	esac
	[ -n "${want[$opt]+x}" ] || order+=("$opt")
	want[$opt]=$val
done < <(cat "${frags[@]}")
missing=()
undefined=()
for opt in "${order[@]}"; do
	have=$(grep -E "^$opt=" "$out/.config" | cut -d= -f2- || true)
	if [ "${want[$opt]}" = n ]; then
		[ -z "$have" ] || missing+=("$opt unset (got $have)")
	elif [ "$have" != "${want[$opt]}" ]; then
		if [ -n "$partial" ] && ! defined "$opt"; then
			undefined+=("$opt")
		else
			missing+=("$opt=${want[$opt]} (got ${have:-unset})")
		fi
	fi
done
[ ${#missing[@]} -eq 0 ] || die "options lost after olddefconfig: ${missing[*]}"
[ ${#undefined[@]} -eq 0 ] || say "not in this tree yet: ${undefined[*]}"

say "building $target (log: ${log#"$ROOT"/})"
kmake "$target" &
pid=$!
start=$(date +%s)
# progress on a terminal only: in a log (make test-full, where builds run
# next to the KASAN lane's checks) it would glue itself to their lines
while kill -0 "$pid" 2>/dev/null; do
	sleep 10
	[ -t 2 ] || continue
	n=$(grep -cE '^  (CC|AS|LD|AR)' "$log" || true)
	printf '\r    %4ds  %6d objects' $(($(date +%s) - start)) "$n" >&2
done
[ ! -t 2 ] || printf '\n' >&2
if ! wait "$pid"; then
	grep -E 'error|Error' "$log" | head -20 >&2
	die "kernel build failed; see $log"
fi
say "built $(du -h "$out/$image" | cut -f1) $target in $(($(date +%s) - start))s"
