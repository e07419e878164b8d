/**
 * The bench's ceiling server (BENCH_CEILING=1): the baseline's work (tests/load/work.ts: the
 * service's own statement builders, through the same executeSql, Drizzle session and postgres.js
 * pool) behind a bare node:http server, with none of the service's own work (no Hono, validation,
 * JWT, encryption, JSON rendering, logging or metrics, and no IPN echo POST). Loaded like the
 * service, it shows what answering HTTP from one Node thread costs on this machine before the
 * service adds anything: the highest ratio a Node service issuing these statements could reach here.
 */
import http from "node:http";
import { openPostgres } from "../../lib/adapters/db/client.js";
import { openRedis } from "../../lib/adapters/redis/index.js";
import { backgroundWork, createPaymentWork, notifyWork } from "./work.js";

const database = await openPostgres(process.env.DATABASE_URL!, { ssl: "disable", max: Number(process.env.DB_MAX_CONNECTIONS) });
const redis = await openRedis({ kind: "tcp", host: process.env.REDIS_HOST!, port: 6379, db: 0, maxConnections: 1 });
const background = backgroundWork(database.db);
let created = 0;

async function answer(path: string | undefined, body: string): Promise<[number, string]> {
  switch (path) {
    case "/v1/payments":
      JSON.parse(body);
      await createPaymentWork(database.db, redis.redis, created++);
      return [201, '{"object":"payment"}'];
    case "/webhooks/fiuu/notify": {
      const fields = new URLSearchParams(body);
      await notifyWork(database.db, fields.get("orderid")!, fields.get("tranID")!);
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
  await Promise.all([database.close(), redis.close()]);
});
