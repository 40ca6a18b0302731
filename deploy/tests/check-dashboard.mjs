// deploy/tests/check-dashboard.mjs -- check a Grafana dashboard JSON offline.
//
//   node deploy/tests/check-dashboard.mjs DASHBOARD.json [--rules OUT.yml] [--metrics OUT.txt]
//
// 1. Structure: the dashboard is type-checked by the TypeScript compiler
//    against the Dashboard type of @grafana/schema (generated from Grafana's
//    own dashboard schema): required fields, field types, enums, and no
//    unknown field at any level that type declares. It leaves panel
//    `options`, `fieldConfig.defaults.custom` and query targets open
//    (Record<string, unknown>), so:
// 2. the rest is checked here: unique panel ids; every panel has a title, a
//    built-in panel type and a gridPos inside the 24 columns, and no two
//    panels overlap; every datasource is the dashboard's Prometheus
//    variable; every query has a unique refId, a PromQL `expr` and only
//    fields of Grafana's Prometheus query (refId, expr, legendFormat,
//    range, instant, format, interval, ...); every
//    `$variable` a query uses is defined or one of Grafana's built-ins.
// --rules writes every expr as a recording rule, with the variables
// replaced by values ($__rate_interval 5m, $__range 1h, $instance .*), for
// `promtool check rules`; --metrics writes the churn_ metric names the
// queries use, one per line. Exits 1 if any check fails.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { stringify } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const file = args[0];
const opt = (name) => (args.indexOf(name) > 0 ? args[args.indexOf(name) + 1] : null);
let failures = 0;
const fail = (what) => { console.log(`FAIL ${what}`); failures++; };
const ok = (what) => console.log(`ok   ${what}`);

const text = readFileSync(file, "utf8");
let dash;
try {
    dash = JSON.parse(text);
} catch (e) {
    fail(`${file}: not JSON: ${e.message}`);
    process.exit(1);
}

// 1. The TypeScript check: the JSON as an object literal typed Dashboard,
// compiled in memory (the virtual file sits in this folder so that
// node_modules resolves). Object literals get excess-property checks.
// The schema's string enums (ThresholdsMode, ...) are TypeScript enums, to
// which JSON's plain strings are not assignable: Loose<> turns every enum
// into the union of its values and leaves the rest of the type as it is.
{
    const virt = join(here, "__dashboard_check__.ts");
    const src = `import type { Dashboard } from "@grafana/schema";
type Loose<T> = T extends string ? \`\${T}\` : T extends readonly (infer U)[] ? Loose<U>[]
    : T extends object ? { [K in keyof T]: Loose<T[K]> } : T;
export const d: Loose<Dashboard> = ${text};
`;
    const options = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2020,
                      module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler,
                      skipLibCheck: true, types: [] };
    const host = ts.createCompilerHost(options);
    const readFile = host.readFile.bind(host);
    const getSourceFile = host.getSourceFile.bind(host);
    host.readFile = (f) => (f === virt ? src : readFile(f));
    host.fileExists = ((fe) => (f) => f === virt || fe(f))(host.fileExists.bind(host));
    host.getSourceFile = (f, lang, ...rest) =>
        f === virt ? ts.createSourceFile(f, src, lang, true) : getSourceFile(f, lang, ...rest);
    const program = ts.createProgram([virt], options, host);
    const diags = ts.getPreEmitDiagnostics(program);
    if (diags.length === 0) {
        ok(`${file}: matches the Dashboard type of @grafana/schema`);
    } else {
        for (const d of diags.slice(0, 10)) {
            // An excess-property message ends in the whole type: cut it.
            const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n  ")
                .replace(/ does not exist in type [\s\S]*/, " is not a field there");
            let where = "";
            if (d.file && d.start !== undefined) {
                const { line } = d.file.getLineAndCharacterOfPosition(d.start);
                where = ` (line ${line - 2} of the JSON)`; // it starts on the 4th line (index 3)
            }
            fail(`${file}: @grafana/schema Dashboard${where}: ${msg}`);
        }
    }
}

// 2. What the type leaves open.
const panelTypes = new Set(["timeseries", "stat", "table", "heatmap", "bargauge", "gauge", "text",
                            "piechart", "barchart", "histogram", "state-timeline", "status-history",
                            "logs", "row"]);
const targetKeys = new Set(["refId", "datasource", "expr", "legendFormat", "range", "instant", "format",
                            "interval", "intervalFactor", "hide", "editorMode", "exemplar", "step"]);
const builtins = new Set(["__rate_interval", "__interval", "__interval_ms", "__range", "__range_s",
                          "__range_ms", "__all", "__dashboard", "__from", "__to"]);
const vars = new Map((dash.templating?.list ?? []).map((v) => [v.name, v]));
const dsVar = [...vars.values()].find((v) => v.type === "datasource" && v.query === "prometheus");
if (!dsVar) fail("a datasource variable of type prometheus is defined");
const dsOk = (ds) => ds && ds.type === "prometheus" && dsVar && ds.uid === `\${${dsVar.name}}`;

const all = [];
for (const p of dash.panels ?? []) {
    all.push(p);
    for (const q of p.panels ?? []) all.push(q);
}
if (typeof dash.uid !== "string" || !/^[A-Za-z0-9_-]{1,40}$/.test(dash.uid)) fail(`uid "${dash.uid}": 1 to 40 of [A-Za-z0-9_-]`);
if (all.length === 0) fail("the dashboard has panels");
const ids = new Set();
const boxes = [];
const exprs = [];
for (const p of all) {
    const name = `panel ${p.id} "${p.title}"`;
    if (!Number.isInteger(p.id) || ids.has(p.id)) fail(`${name}: id is a unique integer`);
    ids.add(p.id);
    if (!p.title) fail(`${name}: has a title`);
    if (!panelTypes.has(p.type)) fail(`${name}: type "${p.type}" is a built-in panel type`);
    const g = p.gridPos ?? {};
    if (![g.x, g.y, g.w, g.h].every(Number.isInteger) || g.w < 1 || g.h < 1 || g.x < 0 || g.x + g.w > 24) {
        fail(`${name}: gridPos ${JSON.stringify(g)} inside 24 columns`);
    } else {
        for (const b of boxes) {
            if (g.x < b.g.x + b.g.w && b.g.x < g.x + g.w && g.y < b.g.y + b.g.h && b.g.y < g.y + g.h)
                fail(`${name} overlaps ${b.name}`);
        }
        boxes.push({ g, name });
    }
    if (p.type === "row") continue;
    if (!dsOk(p.datasource)) fail(`${name}: datasource is the Prometheus variable`);
    const refs = new Set();
    if (!(p.targets ?? []).length) fail(`${name}: has queries`);
    for (const t of p.targets ?? []) {
        if (!t.refId || refs.has(t.refId)) fail(`${name}: refId "${t.refId}" unique`);
        refs.add(t.refId);
        if (!dsOk(t.datasource)) fail(`${name} ${t.refId}: datasource is the Prometheus variable`);
        for (const k of Object.keys(t)) {
            if (!targetKeys.has(k)) fail(`${name} ${t.refId}: "${k}" is a field of a Prometheus query`);
        }
        if (typeof t.expr !== "string" || !t.expr.trim()) { fail(`${name} ${t.refId}: has an expr`); continue; }
        for (const m of t.expr.matchAll(/\$\{?(\w+)\}?/g)) {
            if (!builtins.has(m[1]) && !vars.has(m[1])) fail(`${name} ${t.refId}: $${m[1]} is defined`);
        }
        exprs.push({ panel: name, refId: t.refId, expr: t.expr });
    }
}
for (const v of vars.values()) {
    if (v.type === "query" && !dsOk(v.datasource)) fail(`variable ${v.name}: datasource is the Prometheus variable`);
}
ok(`${all.length} panels (${all.filter((p) => p.type !== "row").length} with queries), ${exprs.length} queries looked at`);

const concrete = (e) => e.replaceAll("$__rate_interval", "5m").replaceAll("$__interval", "1m")
    .replaceAll("$__range", "1h").replace(/\$\{?instance\}?/g, ".*");
const rules = opt("--rules");
if (rules) {
    const doc = { groups: [{ name: "dashboard", rules: exprs.map((q, i) => ({
        record: `dashboard:query_${i + 1}`, expr: concrete(q.expr),
        labels: { panel: q.panel, ref: q.refId } })) }] };
    writeFileSync(rules, stringify(doc));
}
const metrics = opt("--metrics");
if (metrics) {
    const names = new Set();
    for (const q of exprs) {
        const found = [...q.expr.matchAll(/\bchurn_[a-z0-9_]+\b/g)].map((m) => m[0]);
        if (!found.length) fail(`${q.panel} ${q.refId}: uses a churn_ metric`);
        found.forEach((n) => names.add(n));
    }
    writeFileSync(metrics, [...names].sort().join("\n") + "\n");
}
process.exit(failures ? 1 : 0);
