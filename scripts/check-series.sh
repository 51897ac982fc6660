#!/usr/bin/env bash
# Build the tree at the base and after every patch (bisectability).
#   check-series.sh [FIRST]
# FIRST (a patch number): start at the patch before it instead of the base,
# for checking patches added on top of a series already checked.
# Uses its own output directory so the main build stays warm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$ROOT/scripts/tree.sh"
head=$(git -C "$TREE" rev-parse HEAD)
restore() { git -C "$TREE" checkout -q -f series; }
trap restore EXIT
fail=0
# index 0 is the base, index N patch N
steps=($(git -C "$TREE" rev-parse base) $(git -C "$TREE" rev-list --reverse base..HEAD))
first=${1:-1}
case $first in
''|*[!0-9]*) die "FIRST must be a patch number (1-$((${#steps[@]} - 1))), not '$first'" ;;
esac
[ "$first" -ge 1 ] && [ "$first" -lt ${#steps[@]} ] ||
	die "FIRST must be a patch number (1-$((${#steps[@]} - 1))), not '$first'"
for c in "${steps[@]:first-1}"; do
	subj=$(git -C "$TREE" log -1 --format=%s "$c")
	git -C "$TREE" checkout -q -f "$c"
	if msg=$("$ROOT/scripts/build.sh" --partial -o "$BUILD/out/check-series" 2>&1); then
		echo "ok   $(git -C "$TREE" rev-parse --short "$c") $subj"
	else
		echo "FAIL $(git -C "$TREE" rev-parse --short "$c") $subj"
		printf '%s\n' "$msg" | grep -v '^ ' | tail -3 | sed 's/^/     /' 
		fail=1
		break
	fi
done
[ "$(git -C "$TREE" rev-parse HEAD)" = "$head" ] || restore
[ "$fail" -eq 0 ] || die "the series does not build at every step"
echo "every step of the series builds"
