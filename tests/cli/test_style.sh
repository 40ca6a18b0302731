# House rules the compiler does not check (scripts/check-style), and
# formatting of tracked C files with the repository's .clang-format.
. "$(dirname "$0")/lib.sh"
check "check-style finds nothing" scripts/check-style
if command -v clang-format >/dev/null; then
    bad=$(git ls-files '*.c' '*.h' | while read -r f; do
        clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || echo "$f"; done)
    [ -z "$bad" ] && pass "C files are clang-formatted" || fail "C files are clang-formatted" "$bad"
else
    skip "C files are clang-formatted" "clang-format is not installed"
fi
finish
