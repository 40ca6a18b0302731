#!/usr/bin/env bash
# tests/cli/test_simulate.sh -- `churn simulate`: help, exit codes, output.
#
# The generator itself is tested in tests/unit/test_simulate.c; this checks
# the command around it: option parsing, the documented exit codes (0 ok,
# 1 usage, 2 I/O), the output file, stdout, and the stderr summary.
. "$(dirname "$0")/lib.sh"

# --help: exit 0, every option and scenario named, exit codes listed.
check "help exits 0" "$CHURN" simulate --help
"$CHURN" simulate --help >"$T/help.txt" 2>&1
for word in --rows --seed --drift --crlf --id-offset -o none price fiber new-payment concept \
    "Exit codes" "default 10000" "default 42"; do
    check_grep "help mentions $word" "$word" "$T/help.txt"
done

# Usage errors exit 1.
check_fails "missing -o exits 1" 1 "$CHURN" simulate --rows 10
check_grep "missing -o names the option" "-o" "$T/.err"
check_fails "bad --drift exits 1" 1 \
    "$CHURN" simulate --rows 10 --drift sideways -o "$T/x.csv"
check_grep "bad --drift is named" "sideways" "$T/.err"
check_fails "bad --rows exits 1" 1 "$CHURN" simulate --rows ten -o "$T/x.csv"
check_fails "negative --rows exits 1" 1 "$CHURN" simulate --rows -5 -o "$T/x.csv"
check_fails "--seed without value exits 1" 1 "$CHURN" simulate -o "$T/x.csv" --seed
check_fails "unknown option exits 1" 1 "$CHURN" simulate --rows 10 --colour -o "$T/x.csv"
if [ -e "$T/x.csv" ]; then fail "usage errors create no file"; else
    pass "usage errors create no file"; fi

# I/O errors exit 2 and leave no partial file.
check_fails "unwritable path exits 2" 2 "$CHURN" simulate --rows 10 -o "$T/no/such/dir/x.csv"
check_grep "unwritable path is named" "no/such/dir/x.csv" "$T/.err"
if [ -c /dev/full ] && [ -w /dev/full ]; then
    check_fails "full disk exits 2" 2 "$CHURN" simulate --rows 20000 -o /dev/full
    check_grep "full disk is named" "/dev/full" "$T/.err"
    # A device is never removed as a "partial file" (it once was, as root).
    if [ -c /dev/full ]; then pass "/dev/full survives"; else fail "/dev/full survives"; fi
else
    skip "full disk exits 2" "no /dev/full device"
fi

# Writes N rows plus a header, with a summary line on stderr.
check "writes 250 rows" "$CHURN" simulate --rows 250 --seed 7 -o "$T/a.csv"
if [ "$(wc -l <"$T/a.csv")" -eq 251 ]; then pass "250 rows + header"; else
    fail "250 rows + header" "got $(wc -l <"$T/a.csv") lines"; fi
telco_header="customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines"
telco_header+=",InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport"
telco_header+=",StreamingTV,StreamingMovies,Contract,PaperlessBilling,PaymentMethod"
telco_header+=",MonthlyCharges,TotalCharges,Churn"
check_grep "header is the Telco header" "^$telco_header\$" "$T/a.csv"
if awk -F, 'NF != 21 { exit 1 }' "$T/a.csv"; then pass "21 fields per line"; else
    fail "21 fields per line"; fi
check_grep "summary names rows, bytes, seconds, path" \
    "wrote 250 rows .*, $(wc -c <"$T/a.csv") bytes in [0-9.]+ s to $T/a.csv" "$T/.err"
if [ ! -s "$T/.out" ]; then pass "nothing on stdout with -o FILE"; else
    fail "nothing on stdout with -o FILE"; fi
if grep -q $'\r' "$T/.err"; then fail "no progress when stderr is not a terminal"; else
    pass "no progress when stderr is not a terminal"; fi

# Same options, same bytes; "-o -" writes the same to stdout; --option=value works.
check "same again to stdout" "$CHURN" simulate --rows=250 --seed=7 -o -
if cmp -s "$T/a.csv" "$T/.out"; then pass "deterministic, stdout = file"; else
    fail "deterministic, stdout = file"; fi
check "another seed" "$CHURN" simulate --rows 250 --seed 8 -o "$T/b.csv"
if cmp -s "$T/a.csv" "$T/b.csv"; then fail "another seed differs"; else
    pass "another seed differs"; fi

# Zero rows is the header alone.
check "zero rows" "$CHURN" simulate --rows 0 -o "$T/z.csv"
if [ "$(wc -l <"$T/z.csv")" -eq 1 ]; then pass "zero rows is header only"; else
    fail "zero rows is header only"; fi

# --crlf ends every line with CRLF.
check "crlf" "$CHURN" simulate --rows 50 --crlf -o "$T/c.csv"
if [ "$(grep -c $'\r$' "$T/c.csv")" -eq 51 ]; then pass "every line ends with CRLF"; else
    fail "every line ends with CRLF"; fi

# Batches with --id-offset concatenate to one run.
check "batch 1" "$CHURN" simulate --rows 100 --seed 3 -o "$T/b1.csv"
check "batch 2" "$CHURN" simulate --rows 100 --seed 3 --id-offset 100 -o "$T/b2.csv"
check "both" "$CHURN" simulate --rows 200 --seed 3 -o "$T/b12.csv"
if cat "$T/b1.csv" <(tail -n +2 "$T/b2.csv") | cmp -s - "$T/b12.csv"
then
    pass "batches concatenate"; else fail "batches concatenate"; fi
if [ "$(tail -n +2 "$T/b12.csv" | cut -d, -f1 | sort -u | wc -l)" -eq 200 ]; then
    pass "ids are unique"; else fail "ids are unique"; fi

# The new-payment scenario shows the new method; the reference never does.
check "new-payment" "$CHURN" simulate --rows 2000 --drift new-payment -o "$T/np.csv"
check_grep "new-payment has Digital wallet" ",Digital wallet," "$T/np.csv"
check "none" "$CHURN" simulate --rows 2000 -o "$T/none.csv"
if grep -q "Digital wallet" "$T/none.csv"; then fail "reference has no Digital wallet"; else
    pass "reference has no Digital wallet"; fi

finish
