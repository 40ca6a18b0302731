# tests/cli/lib.sh -- helpers for CLI test scripts (sourced).
#
#   check NAME CMD...       passes when CMD exits 0
#   check_fails NAME CODE CMD...  passes when CMD exits with CODE
#   check_grep NAME PATTERN FILE  passes when FILE matches the extended regex
#   skip NAME WHY           prints the reason and counts a skip
#   finish                  prints "<script>: N passed, N failed, N skipped"
#
# Each script runs in its own temporary directory $T, removed at the end.
set -u
CHURN=${CHURN:-$PWD/build/churn}
T=$(mktemp -d "${TMPDIR:-/tmp}/churn-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
_p=0 _f=0 _s=0
_name="cli_$(basename "$0" .sh | sed 's/^test_//')"

pass() { echo "ok      $1"; _p=$((_p + 1)); }
fail() { echo "FAIL    $1"; shift; [ $# -gt 0 ] && echo "    $*"; _f=$((_f + 1)); }
skip() { echo "SKIP    $1"; echo "    skipped: $2"; _s=$((_s + 1)); }

check() {
    local n=$1; shift
    if "$@" >"$T/.out" 2>"$T/.err"; then pass "$n"; else fail "$n" "exit $?: $(head -c 600 "$T/.err")"; fi
}
check_fails() {
    local n=$1 want=$2; shift 2
    "$@" >"$T/.out" 2>"$T/.err"; local rc=$?
    if [ "$rc" -eq "$want" ]; then pass "$n"; else fail "$n" "exit $rc, wanted $want: $(head -c 600 "$T/.err")"; fi
}
check_grep() {
    if grep -qE -- "$2" "$3"; then pass "$1"; else fail "$1" "no match for '$2' in $3: $(head -c 600 "$3")"; fi
}
telco() {
    local f="${CH_SHARED_DATA:-../shared/data}/WA_Fn-UseC_-Telco-Customer-Churn.csv"
    [ -r "$f" ] && echo "$f"
}
finish() {
    echo "$_name: $_p passed, $_f failed, $_s skipped"
    [ "$_f" -eq 0 ]
}
