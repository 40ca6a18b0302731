#!/usr/bin/env bash
# deploy/make-secrets.sh -- write the secrets deploy/compose.yml mounts into
# deploy/secrets/ (kept out of git and of the image's build context): 32
# random bytes in hex for the token secret, the pseudonym key, the
# Alertmanager hook secret and the three passwords. Files that exist are
# kept, so running it again changes nothing.
#
# The directory is mode 0700; the files are 0644 because compose mounts
# them as they are into containers that run as other users (churn 10001,
# Alertmanager nobody, Grafana 472).
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/secrets"
mkdir -p "$dir"
chmod 0700 "$dir"
for name in jwt.secret pseudonym.key hook.secret admin.password grafana.password postgres.password; do
    f="$dir/$name"
    if [ -s "$f" ]; then
        echo "kept    $f"
        continue
    fi
    od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$f.tmp"
    echo >>"$f.tmp"
    chmod 0644 "$f.tmp"
    mv "$f.tmp" "$f"
    echo "wrote   $f"
done
