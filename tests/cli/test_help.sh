# The documentation of the command line matches the binary: README's
# reference block equals `churn --help`, docs/cli.md equals what
# scripts/gen-cli-docs prints, docs/config.md equals `churn config docs`,
# and every command answers --help with exit 0.
. "$(dirname "$0")/lib.sh"

"$CHURN" --help >"$T/help.txt"
awk '/^## Command-line reference/{on=1} on && /^```$/{n++; next} on && n==1' README.md >"$T/readme.txt"
if diff -u "$T/readme.txt" "$T/help.txt" >"$T/diff.txt"; then
    pass "README reference equals churn --help"
else
    fail "README reference equals churn --help" "$(head -20 "$T/diff.txt")"
fi

scripts/gen-cli-docs "$CHURN" >"$T/cli.md"
if diff -u docs/cli.md "$T/cli.md" >"$T/diff.txt"; then
    pass "docs/cli.md is up to date"
else
    fail "docs/cli.md is up to date" "regenerate with scripts/gen-cli-docs > docs/cli.md: $(head -20 "$T/diff.txt")"
fi

"$CHURN" config docs >"$T/config.md"
if diff -u docs/config.md "$T/config.md" >"$T/diff.txt"; then
    pass "docs/config.md is up to date"
else
    fail "docs/config.md is up to date" "regenerate with churn config docs > docs/config.md"
fi

for c in $(awk '/^Commands:/{on=1; next} on && /^  [a-z]/{print $1} on && /^$/{on=0}' "$T/help.txt"); do
    check "churn $c --help exits 0" "$CHURN" "$c" --help
    check_grep "churn $c --help lists exit codes" 'Exit codes' "$T/.out"
done
check_fails "no command is a usage error" 1 "$CHURN"
check_fails "unknown command is a usage error" 1 "$CHURN" frobnicate
check "churn --version" "$CHURN" --version
check_grep "version printed" '^churn [0-9]+\.[0-9]+' "$T/.out"
finish
