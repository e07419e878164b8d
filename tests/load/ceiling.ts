/**
 * The bench's ceiling server (BENCH_CEILING=1): the baseline's statements behind a bare node:http
 * server, with none of the service's own work (no Hono, validation, JWT, encryption, JSON
 * rendering, logging or metrics, and no IPN echo POST). Loaded like the service, it shows what
 * answering HTTP from one Node thread costs on this machine before the service adds anything:
 * the highest ratio a Node service issuing these statements could reach here.
 */
import http from "node:http";
import postgres from "postgres";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { backgroundStatements, createPaymentStatements, notifyStatements } from "./statements.js";

const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.DB_MAX_CONNECTIONS), onnotice: () => {} });
const redis = await openRedis({ kind: "tcp", host: process.env.REDIS_HOST!, port: 6379, db: 0, maxConnections: 1 });
const background = backgroundStatements(sql);
let created = 0;

async function answer(path: string | undefined, body: string): Promise<[number, string]> {
  switch (path) {
    case "/v1/payments":
      JSON.parse(body);
      await createPaymentStatements(sql, redis.redis, created++);
      return [201, '{"object":"payment"}'];
    case "/webhooks/fiuu/notify": {
      const fields = new URLSearchParams(body);
      await notifyStatements(sql, fields.get("orderid")!, fields.get("tranID")!);
      return [200, "OK"];
    }
    default:
      return [200, "{}"]; // the readiness probe
  }
}

const server = http.createServer((request, response) => {
  let body = "";
  request.setEncoding("utf8");
  request.on("data", (chunk: string) => (body += chunk));
  request.on("end", () => {
    answer(request.url, body).then(
      ([status, text]) => response.writeHead(status, { "content-type": "text/plain" }).end(text),
      (error: Error) => {
        console.error(error.message);
        response.writeHead(500).end();
      },
    );
  });
});
server.listen(Number(process.env.PORT), "127.0.0.1");

process.once("SIGTERM", async () => {
  server.close();
  await background.stop();
  await Promise.all([sql.end(), redis.close()]);
});
