#!/usr/bin/env bash
# Build the tree at the base and after every patch (bisectability).
# Uses its own output directory so the main build stays warm.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
"$ROOT/scripts/tree.sh"
head=$(git -C "$TREE" rev-parse HEAD)
restore() { git -C "$TREE" checkout -q -f series; }
trap restore EXIT
fail=0
commits=$(git -C "$TREE" rev-list --reverse base..HEAD)
for c in $(git -C "$TREE" rev-parse base) $commits; do
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
