#!/usr/bin/env bash
# checkpatch.pl --strict on every patch of the series.  Fails if any patch
# has an ERROR, WARNING or CHECK.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cp=$TREE/scripts/checkpatch.pl
[ -x "$cp" ] || die "no $cp; run 'make tree' first"
# checkpatch runs scripts/spdxcheck.py with the python3 in PATH: use Debian's,
# which has the ply and git modules (scripts/deps.sh installs them).
bad=0 n=0
while read -r p; do
	case $p in '' | '#'* | 0000-cover-letter.patch) continue ;; esac
	n=$((n + 1))
	if out=$(cd "$TREE" && PATH=/usr/bin:$PATH "$cp" --strict --quiet --no-summary "$ROOT/patches/$p" 2>&1) && [ -z "$out" ]; then
		echo "ok   $p"
	else
		echo "FAIL $p"
		printf '%s\n' "$out" | sed 's/^/     /'
		bad=$((bad + 1))
	fi
done <"$ROOT/patches/series"
echo "checkpatch --strict: $((n - bad)) clean, $bad with findings"
[ "$bad" -eq 0 ]
