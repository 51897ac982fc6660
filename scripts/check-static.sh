#!/usr/bin/env bash
# make check's static checks of the C files the series touches, against
# the base (build/stock), in Debian's config as check-build.sh sets it up
# (run that first):
#   - sparse (C=1, Debian's sparse) and W=1 add no warning: each object is
#     built at the base and with the series, and a warning counts as new
#     when the series' build has it more often than the base's, in any
#     file (the object's C file, the C files it #includes, headers),
#     compared by path in the tree and text, without line and column
#     numbers, which the series moves;
#   - scripts/kernel-doc -none finds nothing new in the touched files, and
#     every non-static function the series adds has a kernel-doc comment.
#   check-static.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
command -v sparse >/dev/null || die "no sparse; run 'make deps' (Debian's sparse)"
conf=$BUILD/out/check-debian/.config
[ -f "$conf" ] || die "no $conf; run scripts/check-build.sh debian first"
"$ROOT/scripts/stock.sh" >/dev/null
stock=$BUILD/stock
cc=gcc
! command -v ccache >/dev/null || cc="ccache gcc"

objs=()
files=()
while IFS= read -r f; do
	files+=("$f")
	# Debian's config is x86's: another architecture's objects (arm64's
	# mmu.c) are built, warnings checked, by check-build.sh's cross
	# configurations, not run through sparse here
	case $f in arch/x86/*) ;; arch/*) continue ;; esac
	grep -qs "#include \"${f##*/}\"" "$TREE/${f%/*}"/*.c || objs+=("${f%.c}.o")
done < <(git -C "$TREE" diff --name-only base HEAD -- '*.c' | grep -v '^tools/' || true)

# warnings of one object, without line and column numbers, one per line
warnings() {  # warnings TREE OUT OBJ
	local tree=$1 out=$2 o=$3 log
	log=$out/${o//\//_}.log
	mkdir -p "$out"
	# set up once, prepare included, so that each object's log has only
	# what building that object prints
	if ! cmp -s "$conf" "$out/.config.debian"; then
		cp "$conf" "$out/.config"
		cp "$conf" "$out/.config.debian"
		make -C "$tree" O="$out" CC="$cc" HOSTCC=gcc olddefconfig >/dev/null 2>&1 ||
			die "olddefconfig failed in $out"
	fi
	make -C "$tree" O="$out" CC="$cc" HOSTCC=gcc -j"$(nproc)" W=1 C=1 prepare \
		>"$out/prepare.log" 2>&1 || die "make prepare failed in $tree; see $out/prepare.log"
	[ -f "$tree/${o%.o}.c" ] || return 0   # a file the series adds
	rm -f "$out/$o"
	make -C "$tree" O="$out" CC="$cc" HOSTCC=gcc -j"$(nproc)" W=1 C=1 "$o" >"$log" 2>&1 ||
		die "$o does not build in $tree; see $log"
	# gcc and sparse name the file by its absolute path (O= builds): keep
	# the part inside the tree, and every file's warnings, headers' too,
	# but not the host tools' (scripts/) that the first build prints
	sed -E "s|^$tree/||; s|^([.]{2}/)+||" "$log" |
		grep -E '^[^ :]+:[0-9]+:[0-9]+: (warning|error)' | grep -v '^scripts/' |
		sed -E 's/^([^:]+):[0-9]+:[0-9]+:/\1:/' | LC_ALL=C sort || true
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0
for o in "${objs[@]}"; do
	warnings "$stock" "$BUILD/out/check-static-base" "$o" >"$tmp/base"
	warnings "$TREE" "$BUILD/out/check-static" "$o" >"$tmp/series"
	new=$(LC_ALL=C comm -13 "$tmp/base" "$tmp/series")
	if [ -n "$new" ]; then
		echo "FAIL sparse/W=1: $o: new warnings"
		printf '%s\n' "$new" | head -10 | sed 's/^/     /'
		bad=$((bad + 1))
	else
		echo "ok   sparse/W=1: $o: no new warnings"
	fi
done

# kernel-doc: scripts/kernel-doc -none finds nothing in the touched files
# that it did not find at the base (compared without line numbers) ...
kdoc() {  # kdoc TREE FILE: its kernel-doc warnings, without line numbers
	[ -f "$1/$2" ] || return 0
	(cd "$1" && scripts/kernel-doc -none -Wall "$2" 2>&1) | grep -E 'warning|error' |
		sed -E 's/^([^:]+):[0-9]+:/\1:/' | LC_ALL=C sort || true
}
for f in "${files[@]}" $(git -C "$TREE" diff --name-only base HEAD -- '*.h' | grep -v '^tools/'); do
	new=$(LC_ALL=C comm -13 <(kdoc "$stock" "$f") <(kdoc "$TREE" "$f"))
	if [ -n "$new" ]; then
		echo "FAIL kernel-doc: $f: new warnings"
		printf '%s\n' "$new" | head -10 | sed 's/^/     /'
		bad=$((bad + 1))
	fi
done
# ... and every function the series adds or makes visible that is not
# static (a definition at column 0 that the base's file does not have, or
# has as static) has a kernel-doc comment
while IFS=' ' read -r f fn; do
	def="^[A-Za-z_].*[ *]$fn\("
	basedef=$(git -C "$TREE" show "base:$f" 2>/dev/null | grep -E "$def" | head -1 || true)
	[ -z "$basedef" ] || [ "${basedef#static}" != "$basedef" ] || continue
	! git -C "$TREE" show "HEAD:$f" | grep -E "$def" | head -1 | grep -q '^static' || continue
	if (cd "$TREE" && scripts/kernel-doc -rst -function "$fn" "$f" 2>/dev/null) | grep -q .; then
		echo "ok   kernel-doc: $f: $fn()"
	else
		echo "FAIL kernel-doc: $f: $fn() has no kernel-doc comment"
		bad=$((bad + 1))
	fi
done < <(git -C "$TREE" diff -U0 base HEAD -- "${files[@]}" | awk '
	/^\+\+\+ b\// { f = substr($0, 7) }
	/^\+[A-Za-z_][A-Za-z0-9_ *]*[ *][a-z_][a-z0-9_]*\(/ && !/;[ \t]*$/ && !/^\+(if|for|while|return|else)[ (]/ {
		s = substr($0, 2); sub(/\(.*/, "", s); n = split(s, w, /[ *]+/); print f, w[n] }' |
	LC_ALL=C sort -u)
echo "static checks: $bad with findings"
[ "$bad" -eq 0 ]
