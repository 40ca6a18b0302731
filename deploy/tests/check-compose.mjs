// deploy/tests/check-compose.mjs -- what `docker-compose config` does not
// check in deploy/compose.yml. Reads its output (paths made absolute) on
// standard input:
//
//   docker-compose -f deploy/compose.yml config | node deploy/tests/check-compose.mjs
//
// Every bind-mounted file or directory and the build's Containerfile exist
// (secrets excepted: deploy/make-secrets.sh writes them, into
// deploy/secrets/); every published port is bound to 127.0.0.1; every
// secret a service names is declared. Exits 1 if a check fails.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const cfg = parse(readFileSync(0, "utf8"));
let failures = 0;
const fail = (w) => { console.log(`FAIL ${w}`); failures++; };
for (const [name, s] of Object.entries(cfg.services ?? {})) {
    if (s.build) {
        const df = join(s.build.context, s.build.dockerfile ?? "Dockerfile");
        if (!existsSync(df)) fail(`${name}: build file ${df} exists`);
    }
    for (const v of s.volumes ?? []) {
        const src = typeof v === "string" ? v.split(":")[0] : v.source;
        if (src.startsWith("/") && !existsSync(src)) fail(`${name}: mounted ${src} exists`);
    }
    for (const p of s.ports ?? []) {
        const text = typeof p === "string" ? p : `${p.host_ip ?? ""}:${p.published}`;
        if (!text.startsWith("127.0.0.1:")) fail(`${name}: port ${text} is published on 127.0.0.1 only`);
    }
    for (const sec of s.secrets ?? []) {
        const id = typeof sec === "string" ? sec : sec.source;
        if (!cfg.secrets?.[id]) fail(`${name}: secret ${id} is declared`);
    }
}
for (const [id, sec] of Object.entries(cfg.secrets ?? {})) {
    if (!/\/deploy\/secrets\/[^/]+$/.test(sec.file ?? "")) fail(`secret ${id}: a file in deploy/secrets/`);
}
console.log(`${failures ? "FAIL" : "ok  "} ${Object.keys(cfg.services ?? {}).length} services, ${Object.keys(cfg.secrets ?? {}).length} secrets`);
process.exit(failures ? 1 : 0);
