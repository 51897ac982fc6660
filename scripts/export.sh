#!/usr/bin/env bash
# Write build/linux back to patches/, one folder per topic: topic NAME is
# the commits from the previous topic's branch (or base) to topic-NAME,
# in the order patches/series lists the topics; the last topic must end
# at HEAD.  Each topic is exported as it applies on the base plus only
# the topics it needs (its commits, and theirs, replayed there with a
# private index), so that its patches carry the context and index lines a
# maintainer who takes just those sees; a topic that does not apply there
# stops the export.  Plain 'git format-patch' output.  Each topic keeps its
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

# replay PARENT COMMIT...: the commits applied one by one on PARENT, with
# their authors, dates and messages; prints the last one
replay() {
	local parent=$1 c tree
	shift
	GIT_INDEX_FILE=$tmp/index git -C "$TREE" read-tree "$parent"
	for c; do
		git -C "$TREE" format-patch -1 --stdout "$c" |
			GIT_INDEX_FILE=$tmp/index git -C "$TREE" apply --cached 2>"$tmp/apply.log" ||
			return 1
		tree=$(GIT_INDEX_FILE=$tmp/index git -C "$TREE" write-tree)
		parent=$(git -C "$TREE" cat-file commit "$c" | sed '1,/^$/d' |
			GIT_AUTHOR_NAME=$(git -C "$TREE" log -1 --format=%an "$c") \
			GIT_AUTHOR_EMAIL=$(git -C "$TREE" log -1 --format=%ae "$c") \
			GIT_AUTHOR_DATE=$(git -C "$TREE" log -1 --format=%ad --date=raw "$c") \
			GIT_COMMITTER_NAME=$(git -C "$TREE" log -1 --format=%an "$c") \
			GIT_COMMITTER_EMAIL=$(git -C "$TREE" log -1 --format=%ae "$c") \
			GIT_COMMITTER_DATE=$(git -C "$TREE" log -1 --format=%ad --date=raw "$c") \
			git -C "$TREE" commit-tree "$tree" -p "$parent")
	done
	echo "$parent"
}

# the commits of each topic in the line of history: from the previous
# topic's branch (or base) to its own
declare -A commits=()
prev=base
for t in "${topics[@]}"; do
	name=${t%% *}
	tip=topic-$name
	git -C "$TREE" rev-parse -q --verify "refs/heads/$tip" >/dev/null ||
		die "build/linux has no branch $tip (where topic $name ends)"
	git -C "$TREE" merge-base --is-ancestor "$prev" "$tip" ||
		die "$tip does not contain $prev: the topics must be one line of history"
	commits[$name]=$(git -C "$TREE" rev-list --reverse "$prev..$tip" | xargs)
	[ -n "${commits[$name]}" ] || die "topic $name has no commits ($prev..$tip)"
	prev=$tip
done

prev=base
listing=()
for t in "${topics[@]}"; do
	name=${t%% *}
	n=$(wc -w <<<"${commits[$name]}")
	# the topic on the base + the topics it needs; where those are all the
	# topics before it, that is the line of history itself
	mapfile -t chain < <(series_closure "$name")
	from=$prev
	to=topic-$name
	if [ "$(git -C "$TREE" rev-list "base..$prev" | LC_ALL=C sort | xargs)" != \
	     "$(for u in "${chain[@]:0:${#chain[@]}-1}"; do echo ${commits[$u]}; done |
		xargs -n1 | LC_ALL=C sort | xargs)" ]; then
		from=base
		for u in "${chain[@]:0:${#chain[@]}-1}"; do
			# shellcheck disable=SC2086
			from=$(replay "$from" ${commits[$u]}) ||
				die "topic $u does not apply on the base + the topics it needs: $(head -3 "$tmp/apply.log")"
		done
		# shellcheck disable=SC2086
		to=$(replay "$from" ${commits[$name]}) ||
			die "topic $name does not apply on the base + ${chain[*]:0:${#chain[@]}-1}: $(head -3 "$tmp/apply.log")"
	fi
	cover=$ROOT/patches/$name/0000-cover-letter.patch
	[ -f "$cover" ] || die "topic $name has no cover letter $cover"
	# the prefix the cover letter gives, e.g. "PATCH" or "PATCH 6.12.y"
	prefix=$(sed -nE 's/^Subject: \[(PATCH[^]]*) 0\/[0-9]+\].*/\1/p' "$cover")
	[ -n "$prefix" ] || die "$cover: no 'Subject: [PATCH 0/N]' line"
	mkdir -p "$tmp/$name"
	git -C "$TREE" format-patch -q --zero-commit --no-signature --numbered \
		--subject-prefix="$prefix" -o "$tmp/$name" "$from..$to"
	# the cover letter: count, and Cc: from get_maintainer.pl, by the files
	# the patches touch (--no-keywords: a word such as "riscv" in a commit
	# message or a test table does not make its architecture a reviewer)
	cc=$(cd "$TREE" && PATH=/usr/bin:$PATH ./scripts/get_maintainer.pl --no-rolestats \
		--no-keywords --no-git --no-git-fallback --no-tree "$tmp/$name"/*.patch 2>/dev/null |
		sed 's/^/Cc: /')
	awk -v n="$n" -v cc="$cc" '
		!body && /^Subject: \[PATCH/ { sub(/ 0\/[0-9]+\]/, " 0/" n "]") }
		!body && /^Cc: / { skip = 1; next }
		!body && skip && /^[ \t]/ { next }
		!body && /^$/ { if (cc != "") print cc; body = 1 }
		{ skip = 0; print }' "$cover" >"$tmp/$name/0000-cover-letter.patch"
	listing+=("# topic $name; needs: ${t#* }")
	while IFS= read -r f; do listing+=("$name/$f"); done < <(cd "$tmp/$name" && ls -- *.patch)
	listing+=("")
	prev=topic-$name
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
