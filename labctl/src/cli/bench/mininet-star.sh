#!/usr/bin/env bash
# labctl bench's Mininet reference: N hosts on one Linux bridge (lxbr), no
# controller, no test; Mininet's own "completed in X seconds" line is its
# build+stop time.
#
#   mininet-star.sh N
#
# When it cannot run, it says why on stderr and exits 2; labctl bench shows
# that reason in its "no Mininet comparison" note.
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 N" >&2; exit 2; }

missing() { echo "$1 (apt-get install -y $2)" >&2; exit 2; }
command -v mn >/dev/null || missing "Mininet is not installed" "mininet bridge-utils"
# --switch lxbr drives the bridge with brctl.
command -v brctl >/dev/null || missing "Mininet is installed but bridge-utils (brctl, for --switch lxbr) is missing" bridge-utils

log=$(mn --topo "single,$1" --switch lxbr --controller none --test none 2>&1) || {
    echo "mn failed: $(tail -n 3 <<<"$log")" >&2
    exit 1
}
grep -E 'completed in' <<<"$log" || { echo "mn printed no 'completed in' line: $(tail -n 3 <<<"$log")" >&2; exit 1; }
