import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

// The layers of lib/README.md, top to bottom, as the lint rule in biome.json enforces them.
const root = fileURLToPath(new URL("../../", import.meta.url));
const layers = ["lib/entry", "lib/app", "handlers", "lib/http", "lib/ops", "lib/domain", "lib/adapters", "lib/core"];
const biome = path.join(root, "node_modules/.bin/biome");

// Probes are linted in a scratch copy of the configuration (its `includes` are relative to it), so
// the checkout is never written to.
const scratch = mkdtempSync(path.join(tmpdir(), "layers-"));
const config = JSON.parse(readFileSync(path.join(root, "biome.json"), "utf8"));
delete config.vcs;
delete config.$schema;
writeFileSync(path.join(scratch, "biome.json"), JSON.stringify(config));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/**
 * Probes (a file at a path, with its source) are written into the scratch copy, then linted by one
 * `biome lint` run; each test reads the diagnostics of its own probes.
 */
const probes = new Map<string, string>();
let diagnostics: Map<string, string[]> | undefined;
function probe(file: string, source: string): () => string[] {
  const name = file.replace(/probe\.ts$/, `probe${probes.size}.ts`);
  probes.set(name, source);
  return () => {
    diagnostics ??= lintAll();
    return diagnostics.get(name) ?? [];
  };
}
function lintAll(): Map<string, string[]> {
  for (const [file, source] of probes) {
    mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true });
    writeFileSync(path.join(scratch, file), source);
  }
  let output: string;
  try {
    output = execFileSync(biome, ["lint", "--reporter=json", "--max-diagnostics=none", "."], {
      cwd: scratch,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (error) {
    output = (error as { stdout?: string }).stdout ?? "";
  }
  const report = JSON.parse(output.slice(output.indexOf("{"))) as {
    diagnostics: { category: string; message: string; location: { path: string } }[];
  };
  const found = new Map<string, string[]>();
  for (const d of report.diagnostics) found.set(d.location.path, [...(found.get(d.location.path) ?? []), `${d.category}: ${d.message}`]);
  return found;
}

/** A relative specifier from a module in `from` to a module in `to`. */
const specifier = (from: string, to: string) => `${path.posix.relative(from, to) || "."}/module.js`;

describe("lib/ in layers, the direction enforced by npm run lint", () => {
  it("has no loose modules: every file of lib/ is in a layer's folder", () => {
    const top = readdirSync(path.join(root, "lib"), { withFileTypes: true });
    expect(top.filter((entry) => entry.isFile()).map((entry) => entry.name)).toEqual(["README.md"]);
    expect(
      top
        .filter((entry) => entry.isDirectory())
        .map((entry) => `lib/${entry.name}`)
        .sort(),
    ).toEqual(layers.filter((l) => l.startsWith("lib/")).sort());
  });

  it("draws the same layers in lib/README.md as the lint rule enforces", () => {
    const readme = readFileSync(path.join(root, "lib/README.md"), "utf8");
    const drawn = [...readme.matchAll(/^\s*(lib\/[a-z]+|handlers)\/\s/gm)].map((m) => m[1]);
    expect(drawn).toEqual(layers);
  });

  for (const [i, layer] of layers.entries()) {
    const below = layers.slice(i + 1);
    const above = layers.slice(0, i);
    if (above.length > 0) {
      const upward = above.map(
        (upper) => [upper, probe(`${layer}/probe.ts`, `import { x } from "${specifier(layer, upper)}";\nexport const y = x;\n`)] as const,
      );
      it(`refuses an import from ${layer}/ up into ${above.join(", ")}`, () => {
        for (const [upper, found] of upward) {
          expect(found(), `${layer} → ${upper}`).toEqual([
            expect.stringMatching(/^lint\/style\/noRestrictedImports: .*may import only from its own layer or below/),
          ]);
        }
      });
    }
    // http and ops are siblings: each is refused the other (their own case below).
    const targets = [layer, ...below.filter((l) => !(layer === "lib/http" && l === "lib/ops"))];
    const source = targets.map((t, n) => `import { x${n} } from "${specifier(layer, t)}";`).join("\n");
    const downward = probe(`${layer}/probe.ts`, `${source}\nexport const all = [${targets.map((_, n) => `x${n}`).join(", ")}];\n`);
    it(`accepts imports from ${layer}/ into its own layer${below.length ? " and those below" : ""}`, () => {
      expect(downward()).toEqual([]);
    });
  }

  const httpToOps = probe("lib/http/probe.ts", `import { x } from "../ops/jobs/loop.js";\nexport const y = x;\n`);
  const opsToHttp = probe("lib/ops/probe.ts", `import { x } from "../http/context.js";\nexport const y = x;\n`);
  it("keeps http and ops apart: neither imports the other", () => {
    expect(httpToOps()).toHaveLength(1);
    expect(opsToHttp()).toHaveLength(1);
  });

  const handlerSql = ["drizzle-orm", "../drizzle/schema.js", "../lib/adapters/db/client.js"].map(
    (from) => [from, probe("handlers/probe.ts", `import { x } from "${from}";\nexport const y = x;\n`)] as const,
  );
  it("keeps SQL out of handlers: no Drizzle, schema or database adapter import", () => {
    for (const [from, found] of handlerSql) expect(found(), from).toEqual([expect.stringMatching(/its SQL belongs in lib\/domain/)]);
  });

  const hono = `import type { Context } from "hono";\nexport type C = Context;\n`;
  const belowHttp = ["lib/ops", "lib/domain", "lib/adapters", "lib/core"].map((layer) => [layer, probe(`${layer}/probe.ts`, hono)] as const);
  const sandboxHono = probe("lib/adapters/fiuu/sandbox/probe.ts", hono);
  const sandboxUp = probe("lib/adapters/fiuu/sandbox/probe.ts", `import { x } from "../../../domain/deps.js";\nexport const y = x;\n`);
  it("keeps Hono out of everything below the HTTP layer, the Fiuu sandbox (a Hono app of its own) aside", () => {
    for (const [layer, found] of belowHttp) expect(found(), layer).toEqual([expect.stringMatching(/may not import Hono/)]);
    expect(sandboxHono()).toEqual([]);
    expect(sandboxUp()).toHaveLength(1);
  });
});
