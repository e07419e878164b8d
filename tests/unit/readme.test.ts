import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { configVariables } from "../../lib/config.js";

describe("README configuration table", () => {
  it("lists exactly the variables the config schema reads", () => {
    const readme = readFileSync("README.md", "utf8");
    const section = readme.slice(readme.indexOf("## Configuration"), readme.indexOf("## Running against"));
    const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
    expect([...documented].sort()).toEqual([...configVariables].sort());
  });
});
