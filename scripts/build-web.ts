/**
 * Bundles the demo page (src/demo/main.tsx) into public/build/demo.js, which the Worker serves
 * as a static asset beside public/index.html. `npm run build:web`; `npm run dev` runs it first.
 */
import { statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "public/build/demo.js");
const started = performance.now();

await build({
  entryPoints: [join(root, "src/demo/main.tsx")],
  outfile,
  bundle: true,
  format: "esm",
  platform: "browser",
  // Browsers with native ES modules, top-level await not needed; keeps the output unpolyfilled.
  target: ["es2022", "chrome110", "firefox110", "safari16"],
  jsx: "automatic",
  minify: true,
  sourcemap: true,
  // React picks its production build from this; without it the bundle ships development checks.
  define: { "process.env.NODE_ENV": '"production"' },
  legalComments: "none",
  logLevel: "warning",
  tsconfig: join(root, "src/demo/tsconfig.json"),
});

const kib = (statSync(outfile).size / 1024).toFixed(1);
const ms = Math.round(performance.now() - started);
console.log(`build:web: ${relative(root, outfile)} ${kib} KiB in ${ms} ms`);
