import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// The production steps (docs/deploying.md, linked from the README) are what .ci/production-smoke runs: the smoke reads the marked
// block and runs its commands as written. These checks keep the block in the shape the smoke needs
// and the image's commands where the steps call them.

const readme = readFileSync("docs/deploying.md", "utf8");
const smoke = readFileSync(".ci/production-smoke", "utf8");
const dockerfile = readFileSync("Dockerfile", "utf8");
const startProd = (JSON.parse(readFileSync("package.json", "utf8")) as { scripts: Record<string, string> }).scripts["start:prod"]!;

function productionSteps(): string[] {
  const marker = readme.indexOf("<!-- production-steps");
  expect(marker, "docs/deploying.md marks its production steps").toBeGreaterThan(0);
  const block = /```sh\n([\s\S]*?)\n```/.exec(readme.slice(marker))![1]!;
  return block.split("\n").filter((line) => line.trim() !== "" && !line.trim().startsWith("#"));
}

describe("the production steps of docs/deploying.md", () => {
  it("are in the section on running against PostgreSQL, in the order roles, migrations as the owner, the service as payment_app", () => {
    const section = readme.slice(readme.indexOf("## Running against PostgreSQL and Redis"), readme.indexOf("## Building the image"));
    expect(section).toContain("<!-- production-steps");
    const steps = productionSteps();
    const roles = steps.findIndex((l) => l.includes("-f drizzle/roles.sql"));
    const migrate = steps.findIndex((l) => /MIGRATION_DATABASE_URL="postgres:\/\/payment_owner:.*" migrate up$/.test(l));
    const start = steps.findIndex((l) => l.includes("DB_USER=payment_app"));
    expect([roles, migrate, start].every((i) => i >= 0)).toBe(true);
    expect(roles).toBeLessThan(migrate);
    expect(migrate).toBeLessThan(start);
    expect(steps.at(-1)).toBe(`DB_USER=payment_app DB_PASSWORD="$APP_PASSWORD" ${startProd}`);
  });

  it("give roles.sql its passwords as psql variables and check the server's certificate", () => {
    const roles = productionSteps().find((l) => l.includes("roles.sql"))!;
    for (const name of ["owner_password", "app_password", "analytics_password"]) expect(roles).toMatch(new RegExp(`-v ${name}="\\$[A-Z_]+"`));
    expect(roles).toContain("ON_ERROR_STOP=1");
    expect(productionSteps()).toContain('export PGSSLMODE=verify-full PGSSLROOTCERT="$DB_SSL_CA_FILE"');
  });

  it("are run by .ci/production-smoke from docs/deploying.md itself, with the image's commands", () => {
    expect(smoke).toContain("/^<!-- production-steps/");
    expect(smoke).toMatch(/^steps=\$\(awk .* docs\/deploying\.md\)$/m);
    expect(smoke).toMatch(/as_app bash -euo pipefail -c "\$setup"/);
    expect(smoke).toMatch(/as_app bash -c "\$start"/);
    for (const tool of ["migrate", "audit-verify"]) {
      expect(dockerfile).toContain(`printf '#!/bin/sh\\nexec node /app/dist/lib/entry/${tool}.js "$@"\\n' > /usr/local/bin/${tool} `);
    }
  });
});
