/**
 * Bundle sizes (`npm run bench:bundle`): what `halo/client` and `halo/react` add to a browser
 * app, minified and gzipped, with their dependencies external (what Halo adds to an app that
 * already has Yjs) and fully bundled (what a new app ships), against the stock `y-websocket`
 * provider bundled the same way; and the Worker as `wrangler deploy` would upload it. Prints a
 * markdown section for docs/BENCHMARKS.md.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, cpus, tmpdir, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build, version as esbuildVersion, type Metafile } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** What an app that uses Yjs already has (and React, a peer of halo/react). */
const YJS_STACK = ["yjs", "y-protocols", "lib0"];

interface Size {
  minified: number;
  gzipped: number;
}

interface Case {
  label: string;
  /** The module an app would write: re-export everything, so nothing is shaken out. */
  contents: string;
  /** Packages left external with the dependencies out, and fully bundled. */
  externalDeps: string[];
  externalBundled: string[];
}

const CASES: Case[] = [
  {
    label: "`halo/client`",
    contents: `export * from "./src/client/index.ts";`,
    externalDeps: YJS_STACK,
    externalBundled: [],
  },
  {
    label: "`halo/react`",
    contents: `export * from "./src/client/react.ts";`,
    externalDeps: [...YJS_STACK, "react"],
    externalBundled: ["react"],
  },
  {
    label: "`halo/client` + `halo/react`",
    contents: `export * from "./src/client/index.ts";\nexport * from "./src/client/react.ts";`,
    externalDeps: [...YJS_STACK, "react"],
    externalBundled: ["react"],
  },
  {
    label: "`y-websocket` (`WebsocketProvider`)",
    contents: `export * from "y-websocket";`,
    externalDeps: YJS_STACK,
    externalBundled: [],
  },
];
const BASELINE = CASES.length - 1;

/** Minified, browser ESM, as an app's bundler would emit it; license comments left out. */
async function measure(contents: string, external: readonly string[]): Promise<Size> {
  const result = await build({
    stdin: { contents, resolveDir: root, loader: "ts", sourcefile: "app-entry.ts" },
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    external: external.flatMap((name) => [name, `${name}/*`]),
    write: false,
    logLevel: "warning",
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  return { minified: code.byteLength, gzipped: gzipSync(code, { level: 9 }).byteLength };
}

interface WorkerBuild {
  raw: number;
  gzipped: number;
  /** wrangler's own "Total Upload: … KiB / gzip: … KiB" line. */
  reported: string;
  /** Bytes in the output per package (Halo's own code as `halo`), largest first. */
  byPackage: Array<[string, number]>;
}

/** The Worker exactly as `wrangler deploy` bundles it (offline: --dry-run needs no account). */
function wranglerBuild(minify: boolean): WorkerBuild {
  const outdir = mkdtempSync(join(tmpdir(), "halo-bundle-"));
  try {
    const args = ["deploy", "--dry-run", "--outdir", outdir, "--metafile"];
    if (minify) args.push("--minify");
    const run = spawnSync(join(root, "node_modules/.bin/wrangler"), args, {
      cwd: root,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
      encoding: "utf8",
    });
    const output = `${run.stdout}${run.stderr}`;
    if (run.status !== 0) throw new Error(`wrangler deploy --dry-run failed:\n${output}`);
    const code = readFileSync(join(outdir, "worker.js"));
    const metafile = JSON.parse(readFileSync(join(outdir, "bundle-meta.json"), "utf8")) as Metafile;
    return {
      raw: code.byteLength,
      gzipped: gzipSync(code, { level: 9 }).byteLength,
      reported: /Total Upload: ([^\n]+)/.exec(output)?.[1]?.trim() ?? "(not reported)",
      byPackage: bytesByPackage(metafile),
    };
  } finally {
    rmSync(outdir, { recursive: true, force: true });
  }
}

function bytesByPackage(metafile: Metafile): Array<[string, number]> {
  const totals = new Map<string, number>();
  for (const output of Object.values(metafile.outputs)) {
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? "halo";
      totals.set(pkg, (totals.get(pkg) ?? 0) + bytesInOutput);
    }
  }
  return [...totals].sort((a, b) => b[1] - a[1]);
}

const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;

function packageVersion(name: string): string {
  const pkg = JSON.parse(
    readFileSync(join(root, "node_modules", name, "package.json"), "utf8"),
  ) as {
    version: string;
  };
  return pkg.version;
}

function git(args: string[]): string {
  try {
    return execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}

const sizes: Array<{ deps: Size; bundled: Size }> = [];
for (const entry of CASES) {
  sizes.push({
    deps: await measure(entry.contents, entry.externalDeps),
    bundled: await measure(entry.contents, entry.externalBundled),
  });
}
const workers = { asConfigured: wranglerBuild(false), minified: wranglerBuild(true) };

const baseline = sizes[BASELINE];
if (!baseline) throw new Error("no baseline");
const date = new Date().toISOString().slice(0, 10);
const commit = git(["rev-parse", "--short", "HEAD"]);
const dirty = git(["status", "--porcelain"]) !== "" ? " plus uncommitted changes" : "";
const cpu = cpus()[0]?.model.trim() ?? "unknown CPU";
const machine = `${cpu}, ${availableParallelism()} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version.slice(1)}`;

const lines: string[] = [
  "## Bundle sizes (issue 7)",
  "",
  `Measured ${date} with \`npm run bench:bundle\` (\`npx tsx bench/bundle-size.ts\`) on ${machine};`,
  `code at commit \`${commit}\`${dirty}. esbuild ${esbuildVersion}, wrangler ${packageVersion("wrangler")}, yjs ${packageVersion("yjs")}, y-protocols ${packageVersion("y-protocols")}, lib0 ${packageVersion("lib0")}, y-websocket ${packageVersion("y-websocket")}.`,
  "",
  "Each entry point re-exported whole (`export * from ...`, so nothing is shaken out), bundled by",
  "esbuild as a browser app's bundler would: ESM, `es2022`, minified, license comments dropped;",
  "gzip is node:zlib at level 9. **Dependencies external**: yjs, y-protocols and lib0 (and",
  "react) left as imports, so the size is what the package adds to an app that already uses Yjs.",
  "**Fully bundled**: everything in but react (a peer), what an app new to Yjs ships.",
  "",
  "| entry point | deps external: min | min+gz | vs y-websocket (gz) | fully bundled: min | min+gz | vs y-websocket (gz) |",
  "|---|---:|---:|---:|---:|---:|---:|",
];
CASES.forEach((entry, i) => {
  const size = sizes[i];
  if (!size) return;
  // halo/react alone does what no part of y-websocket does: no ratio for it.
  const comparable = !entry.label.startsWith("`halo/react`");
  lines.push(
    `| ${entry.label} | ${kib(size.deps.minified)} | ${kib(size.deps.gzipped)} | ${comparable ? ratio(size.deps.gzipped, baseline.deps.gzipped) : "-"} | ${kib(size.bundled.minified)} | ${kib(size.bundled.gzipped)} | ${comparable ? ratio(size.bundled.gzipped, baseline.bundled.gzipped) : "-"} |`,
  );
});
lines.push(
  "",
  "The Worker, as `wrangler deploy --dry-run --outdir <tmp>` bundles it; `wrangler.toml` sets no",
  "`minify`, so the first row is what a deploy uploads today:",
  "",
  "| Worker (`src/worker.ts` and the Durable Objects) | raw | gzip -9 | wrangler reports |",
  "|---|---:|---:|---|",
  `| as configured (not minified) | ${kib(workers.asConfigured.raw)} | ${kib(workers.asConfigured.gzipped)} | ${workers.asConfigured.reported} |`,
  `| \`--minify\` | ${kib(workers.minified.raw)} | ${kib(workers.minified.gzipped)} | ${workers.minified.reported} |`,
  "",
  `Where the minified Worker's bytes come from (esbuild's metafile): ${workers.minified.byPackage
    .slice(0, 8)
    .map(([pkg, bytes]) => `${pkg} ${kib(bytes)}`)
    .join(", ")}.`,
);
console.log(lines.join("\n"));
