// The functions build.
//   node infra/functions/build.mjs [outfile]   the Cloudflare Workers bundle (lib/entry/worker.ts)
//                                              as one ES module for workerd; default
//                                              dist/functions/worker.js. Run by `npm run build`.
//   node infra/functions/build.mjs --vercel    a Vercel Build Output (.vercel/output): one Node.js
//                                              function (lib/entry/vercel.ts) serving every path,
//                                              plus the crons of infra/functions/vercel.json.
// The Lambda entry needs no bundle: tsc compiles it to dist/lib/entry/lambda.js.
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");

/** A plugin that replaces the packages matching `filter` by a module that throws when loaded. */
function unavailable(filter, where) {
  return {
    name: "unavailable",
    setup(b) {
      b.onResolve({ filter }, (args) => ({ path: args.path, namespace: "unavailable" }));
      b.onLoad({ filter: /.*/, namespace: "unavailable" }, (args) => ({
        contents: `throw new Error(${JSON.stringify(`${args.path} is not available in the ${where}`)});`,
        loader: "js",
      }));
    },
  };
}

/**
 * Packages of the Node deployment that a Worker never uses and workerd cannot run: the embedded
 * database, TCP Redis, pretty logs, prom-client (node:cluster, node:v8). The code reaches some of
 * them through dynamic imports on paths a Worker does not take (lib/adapters/db/client.ts's PGlite,
 * lib/adapters/redis/index.ts's ioredis); in the bundle they become a module that fails with a clear
 * message if it is ever loaded, instead of megabytes of code that could not run.
 */
const notInWorkers = /^(@electric-sql\/pglite|drizzle-orm\/pglite|ioredis|pino-pretty|prom-client)(\/.*)?$/;
/** On Vercel's Node.js runtime only the embedded database and pretty logs are left out. */
const notInVercel = /^(@electric-sql\/pglite|drizzle-orm\/pglite|pino-pretty)(\/.*)?$/;

/** Builds the Worker bundle to `outfile` (with a source map beside it); returns esbuild's metafile. */
export async function buildWorker(outfile = path.join(root, "dist/functions/worker.js")) {
  const result = await build({
    entryPoints: [path.join(root, "lib/entry/worker.ts")],
    outfile,
    bundle: true,
    format: "esm",
    target: "es2022",
    // "workerd" picks postgres.js's build on cloudflare:sockets; "browser" keeps packages with a
    // Node-only main on their portable builds. Node's built-ins come from nodejs_compat.
    platform: "browser",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external: ["cloudflare:*", "node:*"],
    sourcemap: true,
    metafile: true,
    logLevel: "warning",
    legalComments: "none",
    plugins: [unavailable(notInWorkers, "Workers build")],
  });
  return result.metafile;
}

/** Writes a Vercel Build Output (v3) to `outDir`: the function, the routes to it, and the crons. */
export async function buildVercel(outDir = path.join(root, ".vercel/output")) {
  const settings = JSON.parse(await readFile(path.join(here, "vercel.json"), "utf8"));
  const fn = path.join(outDir, "functions/index.func");
  await rm(outDir, { recursive: true, force: true });
  await mkdir(fn, { recursive: true });
  await build({
    entryPoints: [path.join(root, "lib/entry/vercel.ts")],
    outfile: path.join(fn, "index.mjs"),
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node24",
    // CommonJS dependencies (pino, ioredis) call require() for Node's built-ins.
    banner: { js: 'import { createRequire as __createRequire } from "node:module"; const require = __createRequire(import.meta.url);' },
    sourcemap: true,
    logLevel: "warning",
    legalComments: "none",
    plugins: [unavailable(notInVercel, "Vercel build")],
  });
  // vercel.json may only configure functions under api/, so the function's settings live here.
  const functionConfig = {
    runtime: "nodejs24.x",
    handler: "index.mjs",
    launcherType: "Nodejs",
    shouldAddHelpers: false,
    maxDuration: 60,
    memory: 1024,
  };
  await writeFile(path.join(fn, ".vc-config.json"), JSON.stringify(functionConfig, null, 2));
  await writeFile(
    path.join(outDir, "config.json"),
    JSON.stringify({ version: 3, routes: [{ src: "/(.*)", dest: "/index" }], crons: settings.crons ?? [] }, null, 2),
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  if (args[0] === "--vercel") await buildVercel(args[1] ? path.resolve(args[1]) : undefined);
  else await buildWorker(args[0] ? path.resolve(args[0]) : undefined);
}
