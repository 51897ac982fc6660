# Shared shell helpers; sourced by the scripts in this folder.
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
TREE=$BUILD/linux
GIT_ID=(-c user.name="memmap-on-memory developers" -c user.email=devel@memmap-on-memory.invalid)

die() {
	printf '%s: error: %s\n' "${0##*/}" "$*" >&2
	exit 1
}

say() {
	printf '==> %s\n' "$*"
}

# patches/series lists the topic series in the order they apply.  A line
# "# topic NAME; needs: A B" (or "needs: base") starts topic NAME, whose
# files are in patches/NAME/: its cover letter 0000-cover-letter.patch,
# then its patches, each listed as NAME/FILE.

# The patches of patches/series in order, cover letters left out.
series_patches() {
	grep -vE '^\s*(#|$)' "$ROOT/patches/series" | grep -v '/0000-cover-letter\.patch$'
}

# "NAME NEEDS..." per topic, in order ("base" needs nothing).
series_topics() {
	sed -nE 's/^# topic ([a-z0-9.-]+); needs: (.*)$/\1 \2/p' "$ROOT/patches/series"
}

# The topics that topic NAME needs, directly or through another, and NAME
# itself last, in the order of patches/series.  Fails for an unknown NAME.
series_closure() {  # series_closure NAME
	local t n rest changed=1
	local -A needs=() want=([$1]=1)
	local -a order=()
	while read -r t rest; do
		needs[$t]=$rest
		order+=("$t")
	done < <(series_topics)
	[ -n "${needs[$1]+x}" ] || return 1
	while [ $changed = 1 ]; do
		changed=0
		for t in "${!want[@]}"; do
			for n in ${needs[$t]}; do
				[ "$n" = base ] || [ -n "${want[$n]+x}" ] || { want[$n]=1; changed=1; }
			done
		done
	done
	for t in "${order[@]}"; do [ -z "${want[$t]+x}" ] || echo "$t"; done
}

# What the tree is built from: sha256 of base.pin and the series' patches
# (tree.sh and export.sh stamp build/linux with it; a run's manifest quotes
# the stamp).
series_digest() {
	local p
	{
		cat "$ROOT/base.pin"
		for p in $(series_patches); do cat "$ROOT/patches/$p"; done
	} | sha256sum | cut -d' ' -f1
}

load_pin() {
	# shellcheck disable=SC1091
	. "$ROOT/base.pin"
}
