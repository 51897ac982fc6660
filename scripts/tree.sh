#!/usr/bin/env bash
# Make build/linux = base commit + 'git am' of every patch in patches/series,
# topic after topic; the branch topic-NAME marks where topic NAME ends
# (make export writes each topic back from these branches).
# Skips the work when the tree already holds exactly this series.  Refuses
# to throw away commits in build/linux that were never exported.
#   tree.sh [--force]
set -euo pipefail
. "$(dirname "$0")/lib.sh"
force=${1:-}
[ -z "$force" ] || [ "$force" = --force ] || die "unknown argument '$force' (usage: tree.sh [--force])"

"$ROOT/scripts/base.sh"
series=$ROOT/patches/series
[ -f "$series" ] || die "no patches/series file"
mapfile -t patches < <(series_patches || true)
for p in "${patches[@]}"; do
	[ -f "$ROOT/patches/$p" ] || die "patches/series lists '$p' but patches/$p does not exist"
done

stamp_file=$TREE/.git/series.applied   # "<patches digest> <resulting HEAD>"
digest=$(series_digest)
head=$(git -C "$TREE" rev-parse HEAD)
old_digest='' old_head=''
[ ! -f "$stamp_file" ] || read -r old_digest old_head <"$stamp_file"
if [ "$old_digest" = "$digest" ] && [ "$old_head" = "$head" ] && git -C "$TREE" diff --quiet HEAD; then
	say "build/linux already holds the series (${#patches[@]} patches)"
	exit 0
fi
if [ "$force" != --force ] && [ -n "$old_head" ] && [ "$head" != "$old_head" ] &&
	[ -n "$(git -C "$TREE" rev-list "$old_head..HEAD" 2>/dev/null)" ]; then
	die "build/linux has commits that are not in patches/ (run 'make export' to keep them, or 'make tree FORCE=1' to drop them)"
fi
if [ "$force" != --force ] && [ -n "$old_head" ] && ! git -C "$TREE" diff --quiet HEAD; then
	die "build/linux has uncommitted changes (commit them and run 'make export' to keep them, or 'make tree FORCE=1' to drop them)"
fi

say "resetting build/linux to the base and applying ${#patches[@]} patches"
git -C "$TREE" am --abort >/dev/null 2>&1 || true
git -C "$TREE" checkout -q -f -B series base
git -C "$TREE" clean -q -f -d -x
git -C "$TREE" for-each-ref --format='%(refname:short)' 'refs/heads/topic-*' |
	xargs -r git -C "$TREE" branch -q -D
topic=
for p in "${patches[@]}"; do
	if [ -n "$topic" ] && [ "${p%%/*}" != "$topic" ]; then
		git -C "$TREE" branch -q -f "topic-$topic" HEAD
	fi
	topic=${p%%/*}
	if ! git -C "$TREE" "${GIT_ID[@]}" am -q --committer-date-is-author-date "$ROOT/patches/$p" >"$BUILD/am.log" 2>&1; then
		git -C "$TREE" am --abort >/dev/null 2>&1 || true
		sed 's/^/    /' "$BUILD/am.log" | head -15 >&2
		rm -f "$stamp_file"
		die "patch $p does not apply to the base + the patches before it"
	fi
done
[ -z "$topic" ] || git -C "$TREE" branch -q -f "topic-$topic" HEAD
echo "$digest $(git -C "$TREE" rev-parse HEAD)" >"$stamp_file"
