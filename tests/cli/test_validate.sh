# churn validate: the truth about the Telco file and about broken files.
. "$(dirname "$0")/lib.sh"
S=config/telco.schema.json
H='customerID,gender,SeniorCitizen,Partner,Dependents,tenure,PhoneService,MultipleLines,InternetService,OnlineSecurity,OnlineBackup,DeviceProtection,TechSupport,StreamingTV,StreamingMovies,Contract,PaperlessBilling,PaymentMethod,MonthlyCharges,TotalCharges,Churn'
ROW='Male,0,No,No,2,Yes,No,DSL,Yes,Yes,No,No,No,No,Month-to-month,Yes,Mailed check,53.85,108.15'

telco_csv=$(telco)
if [ -n "$telco_csv" ]; then
    check "Telco file is valid" "$CHURN" validate "$telco_csv" --schema "$S"
    check_grep "7043 rows accepted, 0 rejected" 'rows +7043 read, 7043 accepted, 0 rejected' "$T/.out"
    check_grep "11 missing TotalCharges" '^TotalCharges +numeric +11 ' "$T/.out"
    check_grep "1869 churners" 'Churn: 1869 positive' "$T/.out"
    check "Telco --json" "$CHURN" validate "$telco_csv" --schema "$S" --json
    if python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["accepted"]==7043 and r["rejected"]==0 and r["positives"]==1869; c={x["name"]:x for x in r["columns"]}; assert c["TotalCharges"]["missing"]==11; assert len(r["sha256"])==64' "$T/.out"; then
        pass "JSON report has the right counts"
    else
        fail "JSON report has the right counts"
    fi
else
    skip "Telco file checks" "the IBM Telco CSV is not at ${CH_SHARED_DATA:-../shared/data}"
fi

# A file with one problem of each kind.
{
    echo "$H"
    echo "0001-AAAAA,$ROW,No"
    echo "0002-AAAAA,$ROW,Maybe"
    echo "0003-AAAAA,${ROW/,2,/,abc,},No"
    echo "0004-AAAAA,${ROW/,2,/,9999,},No"
    echo "0005-AAAAA,${ROW/Male/Robot},No"
    echo "0006-AAAAA,$ROW"
    echo "0001-AAAAA,$ROW,Yes"
    echo "0007-AAAAA,$ROW,"
    echo "0008-AAAAA,${ROW/Mailed check/Digital wallet},Yes"
    echo "0009-AA\"AAA,$ROW,No"
} >"$T/broken.csv"
check_fails "broken file is invalid (exit 3)" 3 "$CHURN" validate "$T/broken.csv" --schema "$S" --rejects "$T/rej.csv"
for r in bad_target not_number out_of_range unknown_category field_count duplicate_id missing_target malformed_csv; do
    check_grep "reason $r reported" "^  $r +1$" "$T/.out"
done
check_grep "2 rows accepted" '10 read, 2 accepted, 8 rejected' "$T/.out"
check_grep "kept unknown category counted" 'PaymentMethod.*1 outside the schema' "$T/.out"
check_grep "line numbers in examples" 'line 3, column Churn: target value not in the label mapping "Maybe"' "$T/.out"
check_grep "rejects file header" '^line,column,reason,value,record$' "$T/rej.csv"
check_grep "rejects file keeps the record" '^5,tenure,out_of_range,9999,"0004-AAAAA,Male' "$T/rej.csv"
n=$(($(wc -l <"$T/rej.csv") - 1))
[ "$n" -eq 8 ] && pass "8 rows in the rejects file" || fail "8 rows in the rejects file" "got $n"
check "within --max-reject-rate 0.9 is valid" "$CHURN" validate "$T/broken.csv" --schema "$S" --max-reject-rate 0.9

# Header problems are one error naming them all.
{ echo "${H/gender,/}"',extra,extra2'; echo "x"; } >"$T/header.csv"
check_fails "header problems exit 3" 3 "$CHURN" validate "$T/header.csv" --schema "$S"
check_grep "missing and unexpected named" 'missing column\(s\) "gender".*unexpected column\(s\) "extra", "extra2"' "$T/.err"
: >"$T/empty.csv"
check_fails "empty file exits 3" 3 "$CHURN" validate "$T/empty.csv" --schema "$S"
check_grep "empty file message" 'empty file' "$T/.err"
echo "$H" >"$T/header-only.csv"
check_fails "header only exits 3" 3 "$CHURN" validate "$T/header-only.csv" --schema "$S"
check_grep "no data rows message" 'no data rows' "$T/.err"
printf '%s\n0001-AAAAA,%s,"No\n' "$H" "$ROW" >"$T/unclosed.csv"
check_fails "unclosed quote exits 3" 3 "$CHURN" validate "$T/unclosed.csv" --schema "$S"
check_grep "unclosed quote names line 2" 'line 2' "$T/.err"
check_fails "missing file exits 2" 2 "$CHURN" validate "$T/nope.csv" --schema "$S"
check_fails "bad schema exits 3" 3 "$CHURN" validate "$T/broken.csv" --schema "$T/broken.csv"
check_fails "no file is a usage error" 1 "$CHURN" validate
check_fails "bad rate is a usage error" 1 "$CHURN" validate "$T/broken.csv" --max-reject-rate 2
check_fails "unknown option is a usage error" 1 "$CHURN" validate "$T/broken.csv" --frob
finish
