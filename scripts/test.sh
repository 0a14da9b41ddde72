#!/usr/bin/env bash
# The whole suite, as `make test` (and so .ci/run) runs it after set-up:
#   1. cargo's tests: unit and property tests, protocol tests, kernel tests in
#      private network namespaces, container tests through ansible-playbook;
#   2. every Molecule scenario (molecule/*/molecule.yml), one after another,
#      each log in target/molecule-SCENARIO.log (its tail printed on failure).
# Everything runs even when an early part fails; the last line sums it up
# ("suite: N passed, M failed", a Molecule scenario counting as one test) and
# the exit status is 1 when anything failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT" || exit 1
mkdir -p target

cargo_log=target/cargo-test.log
cargo test --workspace --locked 2>&1 | tee "$cargo_log"
cargo_rc=${PIPESTATUS[0]}
read -r passed failed < <(awk '/^test result:/ { p += $4; f += $6 } END { print p + 0, f + 0 }' "$cargo_log")
# A build failure or crash reports no failed test; it must still count.
if [ "$cargo_rc" != 0 ] && [ "$failed" = 0 ]; then failed=1; fi
summary="cargo: $passed passed, $failed failed"

molecule_passed=0 molecule_failed=0
for file in molecule/*/molecule.yml; do
    scenario="$(basename "$(dirname "$file")")"
    log="target/molecule-$scenario.log"
    printf '\nmolecule test -s %s (log: %s)\n' "$scenario" "$log"
    start=$SECONDS
    if molecule test -s "$scenario" >"$log" 2>&1; then
        molecule_passed=$((molecule_passed + 1))
        printf 'molecule %s: passed in %d s\n' "$scenario" $((SECONDS - start))
    else
        molecule_failed=$((molecule_failed + 1))
        tail -n 150 "$log"
        printf 'molecule %s: FAILED after %d s (whole log: %s)\n' "$scenario" $((SECONDS - start)) "$log"
    fi
done
summary="$summary; molecule: $molecule_passed scenarios passed, $molecule_failed failed"

passed=$((passed + molecule_passed))
failed=$((failed + molecule_failed))
printf '\nsuite: %d passed, %d failed (%s)\n' "$passed" "$failed" "$summary"
[ "$failed" = 0 ]
