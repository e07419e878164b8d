import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configVariables } from "../../lib/core/config.js";

// The full configuration table lives in docs/configuration.md (the README links it).
describe("the configuration table (docs/configuration.md)", () => {
  it("lists exactly the variables the config schema reads", () => {
    const doc = readFileSync("docs/configuration.md", "utf8");
    const table = doc.slice(doc.indexOf("| variable | default | meaning |"));
    expect(table.length, "docs/configuration.md has the table").toBeLessThan(doc.length);
    const documented = [...table.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual([...configVariables].sort());
  });

  it("is linked from the README", () => {
    expect(readFileSync("README.md", "utf8")).toContain("(docs/configuration.md)");
  });
});
