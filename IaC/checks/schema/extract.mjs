#!/usr/bin/env node
// Extracts the Terraform provider schema subset that IaC/*.tf uses, for the
// offline schema check in IaC/checks (tests/schema.rs). `terraform validate`
// needs the provider binaries, which cannot be downloaded here; the prebuilt
// CDK provider packages on npm carry the same schema in their .jsii assembly.
//
// Regenerate (from the repository root; needs Node >= 20, npm and tar):
//
//   node IaC/checks/schema/extract.mjs
//
// It scans IaC/*.tf for `resource "TYPE"` and `data "TYPE"`, downloads the
// pinned packages below with `npm pack` into a temp dir (or uses
// `--package aws=DIR`, DIR being an unpacked package root holding .jsii and
// lib/), and writes IaC/checks/schema/<provider>.json with sorted keys.
// Options:
//   --tf-dir DIR        where the .tf files are (default: IaC/)
//   --out-dir DIR       where to write <provider>.json (default: this dir)
//   --package P=DIR     use an unpacked package for provider P (aws, tls)
//   --types a,b,...     extract these types too (resource and/or data source)
//
// Sources of truth inside a package:
//   .jsii   the Config struct of each resource/data source and the nested
//           block structs: the real Terraform name (doc anchor `#name`),
//           required (no `optional`), `X block.` for real blocks, single
//           object (max 1) vs array;
//   lib/<resource>/index.js   `isBlock` and the nesting (`list`, `set`,
//           `struct` = single, `map`) of every argument, and the comments
//           on the getters, which name the computed-only attributes.
//
// Output, per provider: { package, package_version, provider,
// provider_version, regenerate, data_sources: {TYPE: SCHEMA},
// resources: {TYPE: SCHEMA} }
// with SCHEMA = { attributes: {NAME: {required, computed_only?}},
//                 blocks: {NAME: {required, nesting, max_items?,
//                          attribute_syntax?, unchecked?, attributes, blocks}} }.
// `attribute_syntax` marks provider attributes of object type that the
// package renders as blocks (SDKv2 "attributes as blocks", e.g. the ingress
// of aws_security_group, where both `x { }` and `x = [...]` are valid); the
// check accepts both spellings for them.
// `unchecked` marks where a recursive struct was cut off (its content is
// not checked).

import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Pinned packages. Bump the version here, then regenerate. */
const PROVIDERS = {
  // cdk-terrain (cdktn) build of hashicorp/aws 6.66.0.
  aws: { pkg: "@cdktn/provider-aws", version: "25.7.0" },
  // There is no @cdktn/provider-tls; the last cdktf build binds hashicorp/tls 4.1.0.
  tls: { pkg: "@cdktf/provider-tls", version: "11.0.1" },
};

const here = path.dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const opts = { tfDir: path.resolve(here, "../.."), outDir: here, packages: {}, types: [] };
  for (let i = 0; i < argv.length; i++) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (flag === "--tf-dir") opts.tfDir = path.resolve(value);
    else if (flag === "--out-dir") opts.outDir = path.resolve(value);
    else if (flag === "--package") {
      const [p, dir] = value.split("=");
      opts.packages[p] = path.resolve(dir);
    } else if (flag === "--types") opts.types.push(...value.split(",").filter(Boolean));
    else throw new Error(`unknown option ${flag} (see the comment at the top)`);
    i++;
  }
  return opts;
}

/** Resource and data source types used in DIR/*.tf: {resources: Set, data: Set}. */
function usedTypes(tfDir, extra) {
  const used = { resources: new Set(), data_sources: new Set() };
  const files = fs.existsSync(tfDir) ? fs.readdirSync(tfDir).filter((f) => f.endsWith(".tf")) : [];
  for (const f of files) {
    const text = fs.readFileSync(path.join(tfDir, f), "utf8");
    for (const m of text.matchAll(/^\s*(resource|data)\s+"([\w-]+)"/gm)) {
      used[m[1] === "resource" ? "resources" : "data_sources"].add(m[2]);
    }
  }
  for (const t of extra) {
    used.resources.add(t);
    used.data_sources.add(t);
  }
  return { used, explicit: new Set(extra) };
}

/** Temp dirs made by fetchPackage, removed on exit. */
const tempDirs = [];
process.on("exit", () => tempDirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** Downloads and unpacks PKG@VERSION into a temp dir; returns the package root. */
function fetchPackage(pkg, version) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "provider-schema-"));
  tempDirs.push(dir);
  const out = execFileSync("npm", ["pack", `${pkg}@${version}`, "--pack-destination", dir, "--silent"], {
    encoding: "utf8",
  });
  const tgz = path.join(dir, out.trim().split("\n").pop());
  execFileSync("tar", ["xzf", tgz, "-C", dir]);
  return path.join(dir, "package");
}

const lowerFirst = (s) => s[0].toLowerCase() + s.slice(1);
const upperFirst = (s) => s[0].toUpperCase() + s.slice(1);
const snake = (s) => s.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase());

/**
 * What the generated lib/<x>/index.js (and, for big resources, its
 * index-structs/*.js) say about each struct, keyed by struct name
 * (the class name, `EcsService`, for the resource's own arguments): `hcl` = {tfName: {isBlock,
 * type}} from the *ToHclTerraform attrs, `computedOnly` = the names its
 * getters mark `computed: true, optional: false, required: false`.
 */
function parseLibDir(dir) {
  const structs = {};
  const get = (name) => (structs[name] ??= { hcl: {}, computedOnly: new Set() });
  const entry = /^\s+"?(\w+)"?: \{\n\s+value: .*\n\s+isBlock: (true|false),\n\s+type: "(\w+)",/gm;
  const files = fs.readdirSync(dir, { recursive: true }).filter((f) => f.endsWith(".js"));
  for (const file of files) {
    const text = fs.readFileSync(path.join(dir, file), "utf8");
    // Top-level declarations start in column 0.
    for (const seg of text.split(/\n(?=(?:class|function) )/)) {
      let m;
      let target;
      if ((m = /^function (\w+)ToHclTerraform\(/.exec(seg))) target = get(upperFirst(m[1]));
      else if ((m = /^class (\w+) extends \w+\.(Terraform(?:Resource|DataSource)|ComplexObject)\b/.exec(seg))) {
        const isTop = m[2] !== "ComplexObject";
        target = get(isTop ? m[1] : m[1].replace(/OutputReference$/, ""));
        // Each getter is preceded by `// name - computed: B, optional: B, required: B`.
        for (const r of seg.matchAll(/\/\/ (\w+) - computed: true, optional: false, required: false$/gm)) target.computedOnly.add(r[1]);
        if (!isTop) continue;
      } else continue;
      for (const e of seg.matchAll(entry)) target.hcl[e[1]] = { isBlock: e[2] === "true", type: e[3] };
    }
  }
  return structs;
}

/** The struct fqn a jsii property type refers to, and whether it is a collection. */
function structRef(type, types) {
  const isStruct = (t) => t?.fqn && types[t.fqn]?.datatype;
  if (isStruct(type)) return { fqn: type.fqn, many: false };
  const options = type.union ? type.union.types : [type];
  for (const t of options) {
    if (isStruct(t.collection?.elementtype)) return { fqn: t.collection.elementtype.fqn, many: true };
  }
  return null;
}

const NESTING = { list: "list", set: "set", struct: "single", map: "map" };

class Extractor {
  constructor(root) {
    this.root = root;
    this.jsii = JSON.parse(fs.readFileSync(path.join(root, ".jsii"), "utf8"));
    this.meta = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8"));
    this.libCache = new Map();
    // "resources/aws_ecs_service" -> class type
    this.byName = new Map();
    for (const t of Object.values(this.jsii.types)) {
      const m = /^Represents a \{@link \S+\/docs\/(resources|data-sources)\/\w+ (\w+)\}/.exec(t.docs?.summary ?? "");
      if (t.kind === "class" && m) this.byName.set(`${m[1] === "resources" ? "resources" : "data_sources"}/${m[2]}`, t);
    }
  }

  header() {
    const p = (this.meta.cdktn ?? this.meta.cdktf).provider;
    return {
      package: this.meta.name,
      package_version: this.meta.version,
      provider: p.name,
      provider_version: p.version,
    };
  }

  libInfo(cls) {
    const dir = path.join(this.root, path.dirname(cls.locationInModule.filename).replace(/^src/, "lib"));
    if (!this.libCache.has(dir)) this.libCache.set(dir, parseLibDir(dir));
    return this.libCache.get(dir);
  }

  /** Schema of a resource or data source, or null if the package lacks it. */
  type(kind, name) {
    const cls = this.byName.get(`${kind}/${name}`);
    if (!cls) return null;
    const config = cls.initializer.parameters.find((p) => p.name === "config").type.fqn;
    return this.struct(config, this.libInfo(cls), new Set(), cls.name);
  }

  /**
   * Schema of struct FQN; INDEX is its lib info, KEY its name there. SEEN
   * holds the enclosing structs: a recursive one (wafv2 statements) is cut
   * off and marked `unchecked`.
   */
  struct(fqn, index, seen, key = this.jsii.types[fqn].name) {
    const st = this.jsii.types[fqn];
    const info = index[key] ?? { hcl: {}, computedOnly: new Set() };
    const out = { attributes: {}, blocks: {} };
    for (const p of st.properties ?? []) {
      const docs = `${p.docs?.summary ?? ""}\n${p.docs?.remarks ?? ""}`;
      const name = /\{@link \S+#(\w+) /.exec(docs)?.[1] ?? snake(p.name);
      const required = !p.optional;
      const ref = structRef(p.type, this.jsii.types);
      const hcl = info.hcl[name];
      const realBlock = p.docs?.summary === `${name} block.`;
      if (ref && !hcl) console.warn(`warning: ${st.name}.${name}: not found in lib/*.js; guessing its nesting`);
      if (ref && (realBlock || hcl?.isBlock)) {
        const block = { required, nesting: NESTING[hcl?.type] ?? (ref.many ? "list" : "single") };
        if (!ref.many) block.max_items = 1;
        if (!realBlock) block.attribute_syntax = true;
        if (seen.has(ref.fqn) || ref.fqn === fqn) Object.assign(block, { unchecked: true, attributes: {}, blocks: {} });
        else Object.assign(block, this.struct(ref.fqn, index, new Set([...seen, fqn])));
        out.blocks[name] = block;
      } else {
        out.attributes[name] = { required };
      }
    }
    for (const name of info.computedOnly) {
      if (!(name in out.attributes) && !(name in out.blocks)) out.attributes[name] = { required: false, computed_only: true };
    }
    return out;
  }
}

/** VALUE with object keys sorted at every level, so regeneration diffs cleanly. */
function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  const { used, explicit } = usedTypes(opts.tfDir, opts.types);
  const missing = [];
  for (const [prov, { pkg, version }] of Object.entries(PROVIDERS)) {
    const prefix = `${prov}_`;
    const root = opts.packages[prov] ?? fetchPackage(pkg, version);
    const ex = new Extractor(root);
    // Header first, then the types.
    const doc = { ...ex.header(), regenerate: "node IaC/checks/schema/extract.mjs", data_sources: {}, resources: {} };
    for (const kind of ["resources", "data_sources"]) {
      for (const t of [...used[kind]].filter((t) => t.startsWith(prefix)).sort()) {
        const schema = ex.type(kind, t);
        if (schema) doc[kind][t] = schema;
        else if (!explicit.has(t)) missing.push(`${kind === "resources" ? "resource" : "data"} "${t}"`);
      }
    }
    const out = path.join(opts.outDir, `${prov}.json`);
    for (const kind of ["data_sources", "resources"]) doc[kind] = sorted(doc[kind]);
    fs.writeFileSync(out, JSON.stringify(doc, null, 1) + "\n");
    const n = Object.keys(doc.resources).length + Object.keys(doc.data_sources).length;
    console.log(`${out}: ${n} types from ${doc.package}@${doc.package_version} (${doc.provider} ${doc.provider_version})`);
  }
  // terraform_* (terraform_data) is built into Terraform: no npm package;
  // schema/terraform.json is written by hand.
  const known = [...Object.keys(PROVIDERS).map((p) => `${p}_`), "terraform_"];
  for (const kind of ["resources", "data_sources"]) {
    for (const t of used[kind]) {
      if (!known.some((k) => t.startsWith(k)) && !explicit.has(t)) missing.push(`${kind === "resources" ? "resource" : "data"} "${t}" (no provider package configured)`);
    }
  }
  if (missing.length) {
    console.error(`not found in the provider packages:\n  ${missing.join("\n  ")}`);
    process.exit(1);
  }
}

main();
