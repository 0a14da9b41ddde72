#!/usr/bin/env bash
# The checks that run on every change, as `make lint` (and so .ci/run) runs
# them after set-up, in this order:
#   1. rustfmt       cargo fmt --all --check
#   2. clippy        cargo clippy --workspace --all-targets --locked -- -D warnings
#   3. shellcheck    every shell script: *.sh, *.bash, or a sh/bash/dash/ksh
#                    shebang, among the files git tracks or would track
#   4. yamllint      every YAML file that git does not ignore (.yamllint)
#   5. ansible-lint  roles/ playbooks/ molecule/ tests/cluster/, production
#                    profile, offline (.ansible-lint)
# Every check runs even when an earlier one fails; the last line sums them up
# and the exit status is 1 when any failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

passed=() failed=()
# check NAME COMMAND...: runs the command, reports it by name.
check() {
    local name=$1
    shift
    printf '\n== %s: %s\n' "$name" "$*"
    if "$@"; then
        printf '== %s: passed\n' "$name"
        passed+=("$name")
    else
        printf '== %s: FAILED\n' "$name"
        failed+=("$name")
    fi
}

# The shell scripts, found anew on every run so that a new one is covered
# without a list to keep: by name, or by a shebang naming a shell that
# ShellCheck knows.
shell_scripts=()
while IFS= read -r -d '' file; do
    [ -f "$file" ] || continue  # deleted in the work tree, not yet in the index
    case "$file" in
        *.sh | *.bash) shell_scripts+=("$file"); continue ;;
    esac
    first=""
    IFS= read -r first <"$file" 2>/dev/null || true
    if [[ "$first" =~ ^#!.*(/|env[[:space:]]+)(ba|da|k)?sh([[:space:]]|$) ]]; then
        shell_scripts+=("$file")
    fi
done < <(git ls-files -z --cached --others --exclude-standard | sort -z)

check rustfmt cargo fmt --all --check
check clippy cargo clippy --workspace --all-targets --locked -- -D warnings
# -x: follow the files the scripts source (their `# shellcheck source=`
# paths are relative to the repository's root, the directory it runs in).
check shellcheck shellcheck -x "${shell_scripts[@]}"
check yamllint yamllint --strict -c .yamllint .
# ANSIBLE_DUPLICATE_YAML_DICT_KEY: Ansible's YAML loader takes a key that
# overrides a `<<:` merge (molecule/*/molecule.yml's platforms) for a
# duplicate and warns; yamllint's key-duplicates rule, above, checks the same
# files for real duplicates.
check ansible-lint env ANSIBLE_DUPLICATE_YAML_DICT_KEY=ignore \
    ansible-lint -c .ansible-lint roles/ playbooks/ molecule/ tests/cluster/

total=$((${#passed[@]} + ${#failed[@]}))
if [ "${#failed[@]}" -eq 0 ]; then
    printf '\nlint: all %d checks passed (%s)\n' "$total" "${passed[*]}"
else
    printf '\nlint: %d of %d checks FAILED (%s)\n' "${#failed[@]}" "$total" "${failed[*]}"
    exit 1
fi
