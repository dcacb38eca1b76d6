#!/usr/bin/env bash
# The `labctl test` step of action.yml, as a runner runs it: LABS, SNAPSHOTS
# and ARGS come from the action's inputs; labctl writes the job summary
# ($GITHUB_STEP_SUMMARY) and the annotations itself. Leaves junit.xml, the
# run folder and every .snap.new file in $RUNNER_TEMP/labctl-results, sets
# the step's outputs, and exits with labctl's status.
set -uo pipefail

results="${RUNNER_TEMP:-${TMPDIR:-/tmp}}/labctl-results"
rm -rf "$results"
mkdir -p "$results/runs"
# LABCTL: the binary the action built (a leading ~ as YAML leaves it); else PATH's.
labctl=${LABCTL:-labctl}
labctl=${labctl/#\~/$HOME}
command -v "$labctl" >/dev/null || { echo "::error::labctl not found at $labctl"; exit 1; }

# Labs need root; keep the GitHub variables labctl reads across sudo.
as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    else
        sudo --preserve-env=GITHUB_ACTIONS,GITHUB_STEP_SUMMARY,CI "$@"
    fi
}

read -r -a labs <<< "${LABS:-labs}"
read -r -a extra <<< "${ARGS:-}"
command=("$labctl" test "${labs[@]}" --junit "$results/junit.xml" --out "$results/runs")
if [ -n "${SNAPSHOTS:-}" ]; then
    command+=(--snapshots "$SNAPSHOTS")
fi
command+=("${extra[@]}")

as_root "${command[@]}" 2>&1 | tee "$results/labctl-test.log"
status=${PIPESTATUS[0]}

# Pending snapshots, with their folders, for review after download.
find . -name '*.snap.new' -not -path './target/*' -print0 | while IFS= read -r -d '' pending; do
    mkdir -p "$results/pending/$(dirname "$pending")"
    cp "$pending" "$results/pending/$pending"
done
# Root wrote them; let later steps of the job (upload) read and remove them.
as_root chown -R "$(id -u):$(id -g)" "$results" 2>/dev/null || true

totals=$(grep -E '^test: [0-9]+ passed, [0-9]+ failed' "$results/labctl-test.log" | tail -n 1)
passed=$(sed -E 's/^test: ([0-9]+) passed.*/\1/' <<< "$totals")
failed=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<< "$totals")
{
    echo "passed=${passed:-0}"
    echo "failed=${failed:-0}"
    echo "results=$results"
} >> "${GITHUB_OUTPUT:-/dev/null}"
exit "$status"
