#!/usr/bin/env bash
# Run the given unit-test binaries; non-zero if any fails.
set -u
rc=0
export PC_FIXTURES_DIR=${PC_FIXTURES_DIR:-build/fixtures}
for t in "$@"; do "$t" || rc=1; done
exit $rc
