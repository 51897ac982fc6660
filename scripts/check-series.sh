#!/usr/bin/env bash
# Bisectability, and each topic on its own.
#   check-series.sh [FIRST]       build the base and the tree after every patch
#                                 of every topic (FIRST, a commit number of the
#                                 whole line: start at the one before it)
#   check-series.sh --topic NAME [--no-run]
#                                 build topic NAME after every one of its
#                                 patches, on the base plus only the topics it
#                                 needs (patches/series: '# topic NAME; needs:');
#                                 then build the main kernel there and run the
#                                 scenarios that test NAME on it (--no-run:
#                                 not those).  Topic arm64: each step builds
#                                 the arm64 kernel with 64 KiB pages, and the
#                                 scenarios run on the three arm64 passes
# Uses its own output directories so the main build stays warm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$ROOT/scripts/tree.sh"
head=$(git -C "$TREE" rev-parse HEAD)
restore() { git -C "$TREE" checkout -q -f series; }
trap restore EXIT

build_at() {  # build_at COMMIT OUT [BUILD.SH ARGS]: ok/FAIL line; returns 1 on failure
	local c=$1 out=$2 subj msg
	shift 2
	subj=$(git -C "$TREE" log -1 --format=%s "$c")
	git -C "$TREE" checkout -q -f "$c"
	if msg=$("$ROOT/scripts/build.sh" --partial -o "$out" "$@" 2>&1); then
		echo "ok   $(git -C "$TREE" rev-parse --short "$c") $subj"
	else
		echo "FAIL $(git -C "$TREE" rev-parse --short "$c") $subj"
		printf '%s\n' "$msg" | grep -v '^ ' | tail -3 | sed 's/^/     /'
		return 1
	fi
}

if [ "${1:-}" = --topic ]; then
	name=${2:-}
	[ -n "$name" ] && closure=$(series_closure "$name") ||
		die "--topic '$name': patches/series has the topics $(series_topics | cut -d' ' -f1 | xargs)"
	case ${3:-} in
	'' | --no-run) ;;
	*) die "unknown argument '$3' after --topic $name (--no-run)" ;;
	esac
	# what each step builds, and the passes of the scenarios on the tip
	step=() passes=main image=initrd.cpio target=initramfs
	if [ "$name" = arm64 ]; then
		step=(-a arm64 -c arm64 -c arm64-64k)
		passes=arm64-4k,arm64-16k,arm64-64k image=initrd-arm64.cpio target=initramfs-arm64
	fi
	# the scenarios need the guest image: say so now, not after the builds
	[ -n "${3:-}" ] || [ -f "$BUILD/guest/$image" ] ||
		die "no $BUILD/guest/$image for the scenarios: run 'make $target' (or --no-run)"
	mapfile -t chain <<<"$closure"
	declare -A want=()
	for t in "${chain[@]}"; do want[$t]=1; done
	say "topic $name on the base + ${chain[*]:0:${#chain[@]}-1}"
	git -C "$TREE" am --abort >/dev/null 2>&1 || true   # left by an interrupted run
	git -C "$TREE" checkout -q -f -B "check-$name" base
	n=0
	while read -r p; do
		t=${p%%/*}
		[ -n "${want[$t]+x}" ] || continue
		[ "$t" != "$name" ] || n=$((n + 1))
		git -C "$TREE" "${GIT_ID[@]}" am -q --committer-date-is-author-date "$ROOT/patches/$p" \
			>"$BUILD/am.log" 2>&1 || {
			git -C "$TREE" am --abort >/dev/null 2>&1 || true
			sed 's/^/    /' "$BUILD/am.log" | head -15 >&2
			die "$p does not apply to the base + ${chain[*]}: its topic is missing a prerequisite"
		}
	done < <(series_patches)
	tip=$(git -C "$TREE" rev-parse HEAD)
	fail=0
	for c in $(git -C "$TREE" rev-list --reverse "$tip~$n..$tip") ; do
		build_at "$c" "$BUILD/out/check-series${step[0]:+-arm64}" "${step[@]}" || { fail=1; break; }
	done
	[ "$fail" -eq 0 ] || die "topic $name does not build at every step on its prerequisites"
	if [ -n "${3:-}" ]; then
		echo "topic $name builds at every step on its prerequisites"
		exit
	fi
	# the topic's scenarios, on a kernel built from its tip, in a build
	# folder of its own (kernels, runs) that shares the guest images
	tb=$BUILD/check-$name
	mkdir -p "$tb"
	ln -sfn "$BUILD/guest" "$tb/guest"
	rm -rf "$tb/linux"
	git -C "$TREE" worktree prune
	git -C "$TREE" worktree add -q -f --detach "$tb/linux" "$tip"
	if [ "$passes" = main ]; then
		# --partial: main.config's options that a later topic adds (the
		# KUnit suites) are not there yet
		BUILD=$tb "$ROOT/scripts/build.sh" --partial -o "$tb/out/main" >/dev/null ||
			die "the main kernel does not build at the tip of $name; see $tb/out/main/build.log"
	else
		kernels=${passes//,/ }
		# shellcheck disable=SC2086
		(cd "$ROOT" && BUILD=$tb python3 -m harness build $kernels) >/dev/null ||
			die "the kernels $kernels do not build at the tip of $name; see $tb/out/*/build.log"
	fi
	cd "$ROOT" && BUILD=$tb python3 -m harness run --no-build --passes "$passes" --topic "$name"
	exit
fi

fail=0
# index 0 is the base, index N patch N
mapfile -t steps < <(git -C "$TREE" rev-parse base; git -C "$TREE" rev-list --reverse base..HEAD)
first=${1:-1}
case $first in
''|*[!0-9]*) die "FIRST must be a patch number (1-$((${#steps[@]} - 1))), not '$first'" ;;
esac
[ "$first" -ge 1 ] && [ "$first" -lt ${#steps[@]} ] ||
	die "FIRST must be a patch number (1-$((${#steps[@]} - 1))), not '$first'"
for c in "${steps[@]:first-1}"; do
	build_at "$c" "$BUILD/out/check-series" || { fail=1; break; }
done
[ "$(git -C "$TREE" rev-parse HEAD)" = "$head" ] || restore
[ "$fail" -eq 0 ] || die "the series does not build at every step"
echo "every step of the series builds"
