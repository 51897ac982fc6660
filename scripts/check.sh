#!/usr/bin/env bash
# checkpatch.pl --strict on every patch of every topic.  Fails if any patch
# has an ERROR, WARNING or CHECK.  The patch is fed on stdin: given a path
# that git tracks, checkpatch reads the file as source code.  Commit ids
# (Fixes: and the like) are checked for their form, not looked up:
# build/linux holds the base as one commit, without the history they name
# (UNKNOWN_COMMIT_ID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cp=$TREE/scripts/checkpatch.pl
[ -x "$cp" ] || die "no $cp; run 'make tree' first"
# checkpatch runs scripts/spdxcheck.py with the python3 in PATH: use Debian's,
# which has the ply and git modules (scripts/deps.sh installs them).
bad=0 n=0
while read -r p; do
	n=$((n + 1))
	if out=$(cd "$TREE" && PATH=/usr/bin:$PATH "$cp" --strict --quiet --no-summary \
		--ignore UNKNOWN_COMMIT_ID - <"$ROOT/patches/$p" 2>&1) && [ -z "$out" ]; then
		echo "ok   $p"
	else
		echo "FAIL $p"
		printf '%s\n' "$out" | sed 's/^/     /'
		bad=$((bad + 1))
	fi
done < <(series_patches)
echo "checkpatch --strict: $((n - bad)) clean, $bad with findings"
[ "$bad" -eq 0 ]
