import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));

/** The passwords the tests give drizzle/roles.sql (the shared server trusts local logins anyway). */
export const rolePasswords = {
  owner: "owner-test-password-0001",
  app: "app-test-password-00001",
  analytics: "analytics-test-password1",
};

/** Runs a command, collecting its output. */
export function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * Applies drizzle/roles.sql to the database of `adminUrl` (a superuser's URL) exactly as the README
 * says: psql with the passwords as -v variables. Roles are cluster-wide, so test files applying it
 * at the same moment can collide on the catalog; those attempts are repeated.
 */
export async function applyRoles(adminUrl: string, passwords = rolePasswords, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const args = [
    adminUrl,
    "-q",
    "-v",
    "ON_ERROR_STOP=1",
    "-v",
    `owner_password=${passwords.owner}`,
    "-v",
    `app_password=${passwords.app}`,
    "-v",
    `analytics_password=${passwords.analytics}`,
    "-f",
    "drizzle/roles.sql",
  ];
  for (let attempt = 1; ; attempt++) {
    const result = await run("psql", args, env);
    if (result.code === 0) return;
    const collided = /concurrently|duplicate key value|already exists/.test(result.stderr);
    if (!collided || attempt >= 8) throw new Error(`psql -f drizzle/roles.sql exited ${result.code}: ${result.stderr}`);
    await new Promise((r) => setTimeout(r, 100 * attempt + Math.random() * 200));
  }
}

/** `url` with another user and password. */
export function asRole(url: string, user: string, password?: string): string {
  const parsed = new URL(url);
  parsed.username = user;
  parsed.password = password ?? "";
  return parsed.toString();
}
