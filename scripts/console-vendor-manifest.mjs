// Called by build-console-vendor.sh: from esbuild's metafile, finds every npm package whose code
// went into vendor.js, copies its licence file and writes VENDOR.json (versions and sha256s).
// A package with no licence file stops the build: nothing unlicensed is vendored.
import { createHash } from "node:crypto";
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const [work, out] = process.argv.slice(2);
const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");
const meta = JSON.parse(readFileSync(join(work, "meta.json"), "utf8"));
const lock = JSON.parse(readFileSync(join(work, "package-lock.json"), "utf8"));

const packages = new Set();
for (const input of Object.keys(meta.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.add(match[1]);
}
const files = { "vendor.js": sha256(join(out, "vendor.js")) };
const bundled = {};
for (const name of [...packages].sort()) {
  const dir = join(work, "node_modules", name);
  const info = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"));
  const locked = lock.packages[`node_modules/${name}`];
  if (!locked || locked.version !== info.version) throw new Error(`${name}: not the locked version`);
  const licence = readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  if (!licence) throw new Error(`${name}@${info.version} ships no licence file`);
  const target = `licenses/${name.replace("/", "__")}.txt`;
  copyFileSync(join(dir, licence), join(out, target));
  files[target] = sha256(join(out, target));
  bundled[name] = { version: info.version, license: info.license, integrity: locked.integrity };
}
const manifest = {
  comment: "Written by scripts/build-console-vendor.sh; api-service/tests/console/test_vendor.py checks it.",
  packages: bundled,
  files,
};
writeFileSync(join(out, "VENDOR.json"), JSON.stringify(manifest, null, 2) + "\n");
