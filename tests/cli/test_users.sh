# churn users / keys / audit: the prediction service's users and API keys
# in the registry store, the hash-chained audit log, and tampering with it
# behind the store's back (python3's sqlite3 module) being found.
. "$(dirname "$0")/lib.sh"
R=(--set "workdir=$T/var" --set "registry.url=$T/registry.db")
DB="$T/registry.db"

# ---- users ---------------------------------------------------------------
check "users --help" "$CHURN" users --help
check_grep "users help gives exit codes" '^Exit codes: 0 ok' "$T/.out"
check_grep "users help says no password on the command line" 'never taken on the command line' "$T/.out"
check "add a user, password on stdin" sh -c 'echo "correct horse battery" | "$0" users add alice --role admin "$@"' "$CHURN" "${R[@]}"
check_grep "add confirms" '^user alice added with role admin$' "$T/.out"
printf 'another password\n' >"$T/pw"
check "add a user, --password-file" "$CHURN" users add bob.smith@example.org --role analyst --password-file "$T/pw" "${R[@]}"
printf 'no newline at the end' >"$T/pw2"
check "password file without a final newline" "$CHURN" users add carol --role service --password-file "$T/pw2" "${R[@]}"
check_fails "duplicate user" 1 sh -c 'echo "correct horse battery" | "$0" users add alice --role admin "$@"' "$CHURN" "${R[@]}"
check_grep "duplicate named" "user 'alice' exists" "$T/.err"
check_fails "bad role" 1 "$CHURN" users add dave --role root --password-file "$T/pw" "${R[@]}"
check_grep "bad role named" "unknown role 'root'" "$T/.err"
check_fails "bad user name" 1 "$CHURN" users add "dave smith" --role admin --password-file "$T/pw" "${R[@]}"
check_fails "password on the command line refused" 1 "$CHURN" users add dave --role admin --password hunter22 "${R[@]}"
check_grep "refusal explains" 'never taken on the command line' "$T/.err"
check_fails "short password refused" 1 sh -c 'echo short | "$0" users add dave --role admin "$@"' "$CHURN" "${R[@]}"
check_fails "empty stdin refused" 1 "$CHURN" users add dave --role admin "${R[@]}" </dev/null
check_fails "unreadable password file" 2 "$CHURN" users add dave --role admin --password-file "$T/missing" "${R[@]}"
check_fails "add without --role" 1 "$CHURN" users add dave --password-file "$T/pw" "${R[@]}"
check_fails "users without a subcommand" 1 "$CHURN" users "${R[@]}"
check_fails "unknown subcommand" 1 "$CHURN" users frobnicate "${R[@]}"
check "users list" "$CHURN" users list "${R[@]}"
check_grep "list shows alice" '^alice +admin +active ' "$T/.out"
check_grep "list shows bob" '^bob\.smith@example\.org +analyst +active ' "$T/.out"
check "users list --json" "$CHURN" users list --json "${R[@]}"
python3 -c 'import json,sys; u=json.load(open(sys.argv[1])); assert [x["name"] for x in u]==["alice","bob.smith@example.org","carol"]; assert all(set(x)=={"name","role","disabled","created","updated"} for x in u)' "$T/.out" \
    && pass "json listing has the fields and no hash" || fail "json listing has the fields and no hash" "$(head -c 300 "$T/.out")"
! grep -q argon2 "$T/.out" && pass "no password hash in the listing" || fail "no password hash in the listing"
python3 - "$DB" <<'PY' && pass "stored hash is Argon2id" || fail "stored hash is Argon2id"
import sqlite3, sys
h = sqlite3.connect(sys.argv[1]).execute("SELECT password_hash FROM users WHERE name='alice'").fetchone()[0]
assert h.startswith("$argon2id$") and "correct" not in h, h
PY
check "role" "$CHURN" users role alice scientist "${R[@]}"
check "disable" "$CHURN" users disable alice "${R[@]}"
check "users list after disable" "$CHURN" users list "${R[@]}"
check_grep "alice disabled with new role" '^alice +scientist +disabled ' "$T/.out"
check "enable" "$CHURN" users enable alice "${R[@]}"
check "passwd from a file" "$CHURN" users passwd bob.smith@example.org --password-file "$T/pw2" "${R[@]}"
check_fails "passwd of an unknown user" 5 "$CHURN" users passwd nobody --password-file "$T/pw" "${R[@]}"
check_grep "unknown user named" "no user 'nobody'" "$T/.err"
check_fails "disable an unknown user" 5 "$CHURN" users disable nobody "${R[@]}"
check_fails "role of an unknown user" 5 "$CHURN" users role nobody admin "${R[@]}"
check_fails "role: bad role" 1 "$CHURN" users role alice wizard "${R[@]}"
check_fails "role needs two operands" 1 "$CHURN" users role alice "${R[@]}"

# ---- keys ----------------------------------------------------------------
check "keys --help" "$CHURN" keys --help
check_grep "keys help gives exit codes" '^Exit codes: 0 ok' "$T/.out"
check "create a key" "$CHURN" keys create --role service --label "nightly batch" "${R[@]}"
check_grep "key printed on stdout" '^chk_[0-9a-f]{12}_[0-9a-f]{40}$' "$T/.out"
check_grep "stderr says it will not be shown again" 'will not be shown again' "$T/.err"
KEY=$(cat "$T/.out")
KID=$(echo "$KEY" | cut -d_ -f2)
[ "$(wc -l <"$T/.out")" -eq 1 ] && pass "stdout holds only the key" || fail "stdout holds only the key"
check "create a second key" "$CHURN" keys create --role analyst "${R[@]}"
KID2=$(cut -d_ -f2 "$T/.out")
check "keys list" "$CHURN" keys list "${R[@]}"
check_grep "list shows the key" "^$KID +service +active .*nightly batch$" "$T/.out"
check_grep "never used yet" "^$KID .* never " "$T/.out"
SHA=$(printf '%s' "$KEY" | sha256sum | cut -d' ' -f1)
check "keys list --json" "$CHURN" keys list --json "${R[@]}"
python3 -c 'import json,sys; k=json.load(open(sys.argv[1])); assert len(k)==2 and k[0]["id"]==sys.argv[2] and k[0]["revoked"] is False and k[0]["label"]=="nightly batch"' "$T/.out" "$KID" \
    && pass "json key listing" || fail "json key listing" "$(head -c 300 "$T/.out")"
! grep -q "$SHA" "$T/.out" && ! grep -q "${KEY#chk_}" "$T/.out" && pass "no key or digest in the listing" || fail "no key or digest in the listing"
python3 - "$DB" "$KID" "$SHA" <<'PY' && pass "only the digest is stored" || fail "only the digest is stored"
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute("SELECT sha256 FROM api_keys WHERE id=?", (sys.argv[2],)).fetchone()
assert row[0] == sys.argv[3], row
PY
check "revoke" "$CHURN" keys revoke "$KID" "${R[@]}"
check_grep "revoke confirms" "^key $KID revoked$" "$T/.out"
check "revoke again is harmless" "$CHURN" keys revoke "$KID" "${R[@]}"
check "keys list after revoke" "$CHURN" keys list "${R[@]}"
check_grep "key shown revoked" "^$KID +service +revoked " "$T/.out"
check_grep "other key still active" "^$KID2 +analyst +active " "$T/.out"
check_fails "revoke an unknown key" 5 "$CHURN" keys revoke 000000000000 "${R[@]}"
check_fails "revoke a malformed id" 5 "$CHURN" keys revoke not-a-key "${R[@]}"
check_fails "create without --role" 1 "$CHURN" keys create "${R[@]}"
check_fails "create with a bad role" 1 "$CHURN" keys create --role overlord "${R[@]}"
check_fails "label with a control character" 1 "$CHURN" keys create --role service --label "$(printf 'a\tb')" "${R[@]}"
check_fails "revoke without an id" 1 "$CHURN" keys revoke "${R[@]}"

# ---- audit ---------------------------------------------------------------
check "audit --help" "$CHURN" audit --help
check_grep "audit help gives exit codes" '^Exit codes: 0 ok' "$T/.out"
check "audit list" "$CHURN" audit list "${R[@]}"
ME=$(id -un)
for a in user-add user-role user-disable user-enable user-passwd key-create key-revoke; do
    check_grep "audit has $a" " $a " "$T/.out"
done
check_grep "actor is the OS user" "^1 +[-0-9T:.Z]+ +${USER:-$ME} +user-add +alice " "$T/.out"
check "audit list --json" "$CHURN" audit list --json "${R[@]}"
N=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]));
assert all(len(e["hash"])==64 for e in a)
assert all(a[i]["prev_hash"]==a[i-1]["hash"] for i in range(1,len(a)))
assert a[0]["prev_hash"]=="0"*64
print(len(a))' "$T/.out") && pass "json audit is one chain" || fail "json audit is one chain"
check "audit list --limit 2" "$CHURN" audit list --json --limit 2 "${R[@]}"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert len(a)==2 and a[1]["id"]==int(sys.argv[2])' "$T/.out" "$N" \
    && pass "limit keeps the last entries" || fail "limit keeps the last entries"
check_fails "bad --limit" 1 "$CHURN" audit list --limit 0 "${R[@]}"
check_fails "audit without a subcommand" 1 "$CHURN" audit "${R[@]}"
check "audit verify" "$CHURN" audit verify "${R[@]}"
check_grep "verify reports the count" "^audit chain intact: $N entries$" "$T/.out"
check_grep "verify prints the head hash" "^head [0-9a-f]{64} \(entry $N\)$" "$T/.out"

# ---- tampering -------------------------------------------------------------
python3 - "$DB" "$T/keep.db" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
src.backup(dst); dst.close(); src.close()
PY
restore() {
    python3 - "$T/keep.db" "$DB" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1]); dst = sqlite3.connect(sys.argv[2])
src.backup(dst); dst.close(); src.close()
PY
}
tamper() {
    python3 - "$DB" "$1" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.executescript(sys.argv[2])
db.commit(); db.close()
PY
}
MID=$((N / 2))
tamper "DROP TRIGGER audit_no_update; UPDATE audit SET actor = 'mallory' WHERE id = 3;"
check_fails "edited entry: verify exits 3" 3 "$CHURN" audit verify "${R[@]}"
check_grep "edited entry named" '^audit chain broken at entry 3$' "$T/.out"
check_grep "edit explained" 'entry 3 was changed' "$T/.err"
restore
check "restored: verify passes" "$CHURN" audit verify "${R[@]}"
tamper "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = $MID;"
check_fails "deleted middle entry: verify exits 3" 3 "$CHURN" audit verify "${R[@]}"
check_grep "entry after the gap named" "^audit chain broken at entry $((MID + 1))\$" "$T/.out"
check_grep "gap explained" "entry $((MID + 1)) does not follow entry $((MID - 1))" "$T/.err"
restore
tamper "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = $N;"
check_fails "deleted last entry: verify exits 3" 3 "$CHURN" audit verify "${R[@]}"
check_grep "missing tail named" "^audit chain broken at entry $N\$" "$T/.out"
check_grep "truncation explained" 'removed from the end' "$T/.err"
restore
check "restored again: verify passes" "$CHURN" audit verify "${R[@]}"
check_grep "count back" "^audit chain intact: $N entries$" "$T/.out"
finish
