/**
 * Builds the SDK package: `src/client/index.ts` → `dist/client.js` (`halo/client`) and
 * `src/client/react.ts` → `dist/react.js` (`halo/react`), ESM for browsers and Node alike.
 * `npm run build`. Fails when the metafile shows anything of the server in a client bundle.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Metafile } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const started = performance.now();

/** Runtime and peer dependencies an app already has: imported, never copied into dist. */
const SDK_EXTERNAL_PACKAGES = ["yjs", "y-protocols", "lib0", "react"] as const;
/** Server packages: one of these in a client bundle means a server module slipped in. */
const SERVER_PACKAGES = ["zod", "hono", "jose"];
/**
 * What a client bundle may contain besides src/client/: the wire format, small utilities and
 * the one presence helper the SDK shares with the server. Everything else under src/ and
 * durable-objects/ is the Worker's. A new shared module belongs here once it is known to import
 * nothing of the server.
 */
const SHARED = [
  /^src\/client\//,
  /^src\/protocol\//,
  /^src\/util\//,
  /^src\/presence\/user-view\.ts$/,
];

const ENTRIES = { client: "src/client/index.ts", react: "src/client/react.ts" } as const;

const result = await build({
  entryPoints: Object.entries(ENTRIES).map(([out, entry]) => ({ in: join(root, entry), out })),
  outdir: join(root, "dist"),
  bundle: true,
  format: "esm",
  // Neutral: no Node or browser shims; the SDK runs in both (Node passes `ws` in).
  platform: "neutral",
  target: "es2022",
  external: SDK_EXTERNAL_PACKAGES.flatMap((name) => [name, `${name}/*`]),
  // Readable: apps minify with their own bundler, and a stack trace should name our functions.
  minify: false,
  metafile: true,
  // Written only once checked, so a failed check leaves no server code in dist/.
  write: false,
  logLevel: "warning",
  absWorkingDir: root,
}).catch(() => {
  // esbuild has printed its errors (logLevel); the stack trace would add nothing.
  process.exit(1);
});

const problems = checkClientBundles(result.metafile);
if (problems.length > 0) {
  console.error("build: the client bundles contain what only the server may use:");
  for (const problem of problems) console.error(`  ${problem}`);
  process.exit(1);
}
for (const warning of duplicatedInReact(result.metafile))
  console.warn(`build: warning: ${warning}`);

for (const file of result.outputFiles) {
  mkdirSync(dirname(file.path), { recursive: true });
  writeFileSync(file.path, file.contents);
  const path = relative(root, file.path);
  const output = result.metafile.outputs[path];
  const modules = output ? Object.keys(output.inputs).length : 0;
  const imports = [...new Set(output?.imports.map((entry) => entry.path))].sort();
  console.log(
    `build: ${path} ${(file.contents.byteLength / 1024).toFixed(1)} KiB from ${modules} module${modules === 1 ? "" : "s"}; imports ${imports.join(", ") || "nothing"}`,
  );
}
console.log(`build: done in ${Math.round(performance.now() - started)} ms`);

/**
 * What in each output is not the SDK's own or shared code, one line per package or module,
 * naming what imported it (where to cut).
 */
function checkClientBundles(metafile: Metafile): string[] {
  const importers = new Map<string, Set<string>>();
  for (const [input, { imports }] of Object.entries(metafile.inputs)) {
    for (const imported of imports) {
      const seen = importers.get(imported.path) ?? new Set<string>();
      seen.add(input);
      importers.set(imported.path, seen);
    }
  }
  const problems: string[] = [];
  for (const [output, { inputs }] of Object.entries(metafile.outputs)) {
    const found = new Map<string, { problem: string; files: string[] }>();
    for (const input of Object.keys(inputs)) {
      const problem = inputProblem(input);
      if (problem === null) continue;
      const key = packageOf(input) ?? input;
      const entry = found.get(key) ?? { problem, files: [] };
      entry.files.push(input);
      found.set(key, entry);
    }
    for (const [key, { problem, files }] of found) {
      const from = new Set(
        files.flatMap((file) => [...(importers.get(file) ?? [])]).filter((f) => !files.includes(f)),
      );
      const by = from.size > 0 ? `, imported by ${[...from].sort().join(", ")}` : "";
      problems.push(`${output}: ${key}: ${problem}${by}`);
    }
  }
  return problems;
}

function inputProblem(input: string): string | null {
  const pkg = packageOf(input);
  if (pkg !== null)
    return SERVER_PACKAGES.includes(pkg)
      ? "a server package (the client may use it with `import type` only)"
      : "a package bundled in (make it external, or keep it out of the client)";
  if (SHARED.some((pattern) => pattern.test(input))) return null;
  return "a server module (if browsers may run it, list it in SHARED in scripts/build-sdk.ts)";
}

/** The npm package a bundled file comes from, or null for the project's own files. */
function packageOf(input: string): string | null {
  const match = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input);
  return match?.[1] ?? null;
}

/**
 * halo/react should import only types from the client: a runtime import would put a second
 * copy of that module (and its state) into dist/react.js beside the app's dist/client.js.
 */
function duplicatedInReact(metafile: Metafile): string[] {
  const react = metafile.outputs[relative(root, join(root, "dist/react.js"))];
  if (!react) return [];
  return Object.keys(react.inputs)
    .filter((input) => input.startsWith("src/client/") && input !== ENTRIES.react)
    .map((input) => `dist/react.js carries its own copy of ${input}`);
}
