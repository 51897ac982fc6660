#!/usr/bin/env bash
# Write the commits base..HEAD of build/linux back to patches/ as
# 'git format-patch' files and rewrite patches/series.  The hand-written
# cover letter (0000-cover-letter.patch) stays first; its [PATCH 0/N]
# count follows the series.  Output is stable: re-export gives no diff.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -d "$TREE/.git" ] || die "no build/linux; run 'make tree' first"
git -C "$TREE" diff --quiet HEAD || die "build/linux has uncommitted changes; commit them first"
n=$(git -C "$TREE" rev-list --count base..HEAD)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
git -C "$TREE" format-patch -q --zero-commit --no-signature --numbered \
	--subject-prefix=PATCH -o "$tmp" base..HEAD
rm -f "$ROOT"/patches/0[0-9][0-9][0-9]-*.patch.new
find "$ROOT/patches" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' ! -name '0000-cover-letter.patch' -delete
# A blank context line is a lone space; 'git am' takes an empty line for
# it too.  Write it empty so that no line of a patch file ends in white
# space, whichever way checkpatch reads the file.
sed -i 's/^ $//' "$tmp"/*.patch 2>/dev/null || true
cp "$tmp"/*.patch "$ROOT/patches/" 2>/dev/null || true
cover=$ROOT/patches/0000-cover-letter.patch
[ -f "$cover" ] && sed -i -E "s|^Subject: \[PATCH 0/[0-9]+\]|Subject: [PATCH 0/$n]|" "$cover"
{
	echo "# Applied in this order by 'make tree' (scripts/tree.sh); the cover letter is not applied."
	[ -f "$cover" ] && echo 0000-cover-letter.patch
	(cd "$tmp" && ls -- *.patch 2>/dev/null) || true
} >"$ROOT/patches/series"
# The tree now holds exactly what patches/ holds.
echo "$(series_digest) $(git -C "$TREE" rev-parse HEAD)" >"$TREE/.git/series.applied"
say "exported $n patches to patches/"
