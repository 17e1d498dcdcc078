# Shared by the test scripts (container-test.sh, stack-test.sh): PASS and
# FAIL lines, the summary, and skipping where the machine cannot run them.
# Source it after setting:
#   suite        the name in the summary line ("containers: N passed, M failed")
#   suite_long   the name in the skip and failure lines ("container tests")
#   ci_needs     what CI=true requires, said when it is missing
# shellcheck shell=bash

passed=0
failed=0
pass() { passed=$((passed + 1)); printf 'PASS  %s\n' "$*"; }
fail() { failed=$((failed + 1)); printf 'FAIL  %s\n' "$*"; }
say() { printf '\n--- %s\n' "$*"; }
summary() { printf '\n%s: %d passed, %d failed\n' "$suite" "$passed" "$failed"; }

# Skips the suite (exit 0) because of $1, except under CI=true, where the
# suite must run: then it is a failure.
skip_or_die() {
    if [[ ${CI:-} == true ]]; then
        printf '%s: FAILED: %s (CI=true needs %s)\n' "$suite_long" "$1" "$ci_needs" >&2
        exit 1
    fi
    printf '%s: skipped: %s\n' "$suite_long" "$1"
    exit 0
}
