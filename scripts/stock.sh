#!/usr/bin/env bash
# Make build/stock a checkout of the untouched base (tag 'base' of
# build/linux, a git worktree), for the benchmarks' stock kernel.  The
# series tree in build/linux is left as it is.
#   stock.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ $# -eq 0 ] || die "unexpected argument '$1' (usage: stock.sh)"

"$ROOT/scripts/base.sh"
stock=$BUILD/stock
base=$(git -C "$TREE" rev-parse base)
git -C "$TREE" worktree prune
if [ -e "$stock/.git" ] && [ "$(git -C "$stock" rev-parse HEAD 2>/dev/null)" = "$base" ] &&
	git -C "$stock" diff --quiet HEAD; then
	say "build/stock already is the base"
	exit 0
fi
rm -rf "$stock"
git -C "$TREE" worktree prune
say "checking out the base into build/stock"
git -C "$TREE" worktree add -q --force --detach "$stock" base
