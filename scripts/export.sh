#!/usr/bin/env bash
# Write build/linux back to patches/, one folder per topic: topic NAME is
# the commits from the previous topic's branch (or base) to topic-NAME,
# in the order patches/series lists the topics; the last topic must end
# at HEAD.  Plain 'git format-patch' output.  Each topic keeps its
# hand-written cover letter (NAME/0000-cover-letter.patch), whose
# "[PATCH ... 0/N]" count follows the topic and whose Cc: lines are
# rewritten from scripts/get_maintainer.pl over the topic's patches.
# Output is stable: re-export gives no diff.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[ -d "$TREE/.git" ] || die "no build/linux; run 'make tree' first"
git -C "$TREE" diff --quiet HEAD || die "build/linux has uncommitted changes; commit them first"
mapfile -t topics < <(series_topics)
[ ${#topics[@]} -gt 0 ] || die "patches/series names no topic ('# topic NAME; needs: ...')"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prev=base
listing=()
for t in "${topics[@]}"; do
	name=${t%% *}
	tip=topic-$name
	git -C "$TREE" rev-parse -q --verify "refs/heads/$tip" >/dev/null ||
		die "build/linux has no branch $tip (where topic $name ends)"
	git -C "$TREE" merge-base --is-ancestor "$prev" "$tip" ||
		die "$tip does not contain $prev: the topics must be one line of history"
	n=$(git -C "$TREE" rev-list --count "$prev..$tip")
	[ "$n" -gt 0 ] || die "topic $name has no commits ($prev..$tip)"
	cover=$ROOT/patches/$name/0000-cover-letter.patch
	[ -f "$cover" ] || die "topic $name has no cover letter $cover"
	# the prefix the cover letter gives, e.g. "PATCH" or "PATCH 6.12.y"
	prefix=$(sed -nE 's/^Subject: \[(PATCH[^]]*) 0\/[0-9]+\].*/\1/p' "$cover")
	[ -n "$prefix" ] || die "$cover: no 'Subject: [PATCH 0/N]' line"
	mkdir -p "$tmp/$name"
	git -C "$TREE" format-patch -q --zero-commit --no-signature --numbered \
		--subject-prefix="$prefix" -o "$tmp/$name" "$prev..$tip"
	# the cover letter: count, and Cc: from get_maintainer.pl
	cc=$(cd "$TREE" && PATH=/usr/bin:$PATH ./scripts/get_maintainer.pl --no-rolestats \
		--no-git --no-git-fallback --no-tree "$tmp/$name"/*.patch 2>/dev/null | sed 's/^/Cc: /')
	awk -v n="$n" -v cc="$cc" '
		!body && /^Subject: \[PATCH/ { sub(/ 0\/[0-9]+\]/, " 0/" n "]") }
		!body && /^Cc: / { skip = 1; next }
		!body && skip && /^[ \t]/ { next }
		!body && /^$/ { if (cc != "") print cc; body = 1 }
		{ skip = 0; print }' "$cover" >"$tmp/$name/0000-cover-letter.patch"
	listing+=("# topic $name; needs: ${t#* }")
	while IFS= read -r f; do listing+=("$name/$f"); done < <(cd "$tmp/$name" && ls -- *.patch)
	listing+=("")
	prev=$tip
done
[ "$(git -C "$TREE" rev-parse "$prev")" = "$(git -C "$TREE" rev-parse HEAD)" ] ||
	die "the last topic ($prev) does not end at HEAD; move its branch (git branch -f $prev HEAD)"
for t in "${topics[@]}"; do
	name=${t%% *}
	find "$ROOT/patches/$name" -maxdepth 1 -name '[0-9][0-9][0-9][0-9]-*.patch' -delete
	cp "$tmp/$name"/*.patch "$ROOT/patches/$name/"
done
{
	echo "# The topic series, in the order 'make tree' (scripts/tree.sh) applies them."
	echo "# '# topic NAME; needs: ...' starts topic NAME (folder patches/NAME/) and"
	echo "# names the topics it applies on; its cover letter is not applied."
	echo
	printf '%s\n' "${listing[@]}"
} | sed '$d' >"$ROOT/patches/series"
# The tree now holds exactly what patches/ holds.
echo "$(series_digest) $(git -C "$TREE" rev-parse HEAD)" >"$TREE/.git/series.applied"
say "exported $(series_patches | wc -l) patches in ${#topics[@]} topics to patches/"
