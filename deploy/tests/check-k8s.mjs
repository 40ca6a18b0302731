// deploy/tests/check-k8s.mjs -- validate Kubernetes manifests offline.
//
//   node deploy/tests/check-k8s.mjs FILE.yaml...
//
// Each YAML document (anchors and aliases resolved) is checked twice:
//  1. against the Kubernetes OpenAPI schema of its apiVersion and kind, as
//     bundled by the npm package kubernetes-models (types, required fields,
//     enums and formats, through its ajv validators);
//  2. for unknown fields: those schemas allow any extra property, so a
//     misspelt field (`livenesProbe`) would pass them; here every key must
//     be a property of its object's type, as declared by the package's
//     TypeScript definitions (generated from the same OpenAPI document).
// Prints one line per document and exits 1 if any document fails.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const modules = join(dirname(fileURLToPath(import.meta.url)), "node_modules");

// apiVersion "apps/v1", kind "Deployment" -> kubernetes-models/apps/v1/Deployment
function modelPath(apiVersion, kind) {
    const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
    return join(modules, "kubernetes-models", ...(group ? [group] : []), version, kind);
}

// The properties of the interface declared in a .d.ts file: name -> type
// text, and the file each imported type name comes from.
const typeCache = new Map();
function readType(file) {
    if (typeCache.has(file)) return typeCache.get(file);
    const src = readFileSync(file, "utf8").replace(/\/\*\*[\s\S]*?\*\//g, "");
    const imports = new Map();
    for (const m of src.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
        const spec = m[2].startsWith(".") ? resolve(dirname(file), m[2]) : join(modules, m[2]);
        imports.set(m[1], spec + ".d.ts");
    }
    const body = src.match(/^export interface \w+(?: extends \w+)? \{\n([\s\S]*?)^\}/m);
    let props = null;
    if (body) {
        props = new Map();
        const lines = body[1].split("\n");
        for (let i = 0; i < lines.length; i++) {
            const m = lines[i].match(/^ {4}"([^"]+)"\??: (.*)$/);
            if (!m) continue;
            let type = m[2];
            if (type === "{") { // a map: { [key: string]: T; }
                while (i + 1 < lines.length && !/^ {4}\};?$/.test(lines[i + 1])) type += lines[++i].trim();
                type += "}";
                i++;
            }
            props.set(m[1], type.replace(/;$/, ""));
        }
    }
    const t = { props, imports };
    typeCache.set(file, t);
    return t;
}

// Every key of 'value' must be a property of the type in 'file'; recurses
// into properties whose type is another interface, an array or a map of one.
function unknownFields(value, file, path, out) {
    const t = readType(file);
    if (!t.props || value === null || typeof value !== "object" || Array.isArray(value)) return;
    for (const [key, v] of Object.entries(value)) {
        if (!t.props.has(key)) {
            out.push(`${path}/${key}: no such field`);
            continue;
        }
        const type = t.props.get(key);
        const ref = [...type.matchAll(/\b(I\w+)\b/g)].map((m) => m[1]).find((n) => t.imports.has(n));
        if (!ref || !existsSync(t.imports.get(ref))) continue;
        const sub = t.imports.get(ref);
        if (type.startsWith("Array<") && Array.isArray(v)) {
            v.forEach((e, i) => unknownFields(e, sub, `${path}/${key}/${i}`, out));
        } else if (type.startsWith("{[key: string]:") && v && typeof v === "object") {
            for (const [k, e] of Object.entries(v)) unknownFields(e, sub, `${path}/${key}/${k}`, out);
        } else {
            unknownFields(v, sub, `${path}/${key}`, out);
        }
    }
}

let failed = 0, checked = 0;
for (const file of process.argv.slice(2)) {
    const docs = parseAllDocuments(readFileSync(file, "utf8"));
    for (const [i, doc] of docs.entries()) {
        const where = `${file} document ${i + 1}`;
        if (doc.errors.length) {
            console.log(`FAIL ${where}: YAML: ${doc.errors[0].message}`);
            failed++;
            continue;
        }
        const obj = doc.toJS({ maxAliasCount: 100 });
        if (obj === null) continue; // an empty document
        checked++;
        const name = `${obj.kind}/${obj.metadata?.name}`;
        const base = typeof obj.apiVersion === "string" && typeof obj.kind === "string"
            ? modelPath(obj.apiVersion, obj.kind) : null;
        if (!base || !existsSync(base + ".mjs")) {
            console.log(`FAIL ${where}: unknown apiVersion/kind ${obj.apiVersion} ${obj.kind}`);
            failed++;
            continue;
        }
        const mod = await import(base + ".mjs");
        const errors = [];
        try {
            new mod[obj.kind](obj).validate();
        } catch (e) {
            errors.push(e.message);
        }
        unknownFields(obj, base + ".d.ts", "", errors);
        if (errors.length) {
            console.log(`FAIL ${where} ${name}: ${errors.join("; ")}`);
            failed++;
        } else {
            console.log(`ok   ${where} ${name}`);
        }
    }
}
if (checked === 0) {
    console.log("FAIL no Kubernetes object found");
    failed++;
}
process.exit(failed ? 1 : 0);
