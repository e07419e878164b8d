import { Hono } from "hono";
import { registerServerApis } from "./api.js";
import { registerControl } from "./control.js";
import { registerHostedPage } from "./hosted.js";
import { createSandboxState, type FiuuSandboxOptions } from "./state.js";

export type {
  DeliveryRecord,
  FaultMode,
  FiuuSandboxOptions,
  IpnEchoRecord,
  NextEffect,
  Operation,
  RequestRecord,
  SandboxRefund,
  SandboxTransaction,
} from "./state.js";

/**
 * A Hono app that plays Fiuu with real signatures and Fiuu's own codes (codes.ts), for development
 * and tests; mount it at /sandbox/fiuu or call it directly. Routes (relative to the mount; /MOLPay/
 * works wherever /RMS/ does):
 *
 * - GET|POST /RMS/pay/:merchantId/           hosted payment page, plain or seamless (mps* fields):
 *                                            P03 vcode/mpsvcode, P04 buyer, P09 duplicate, P13, P19
 * - POST     /RMS/pay/:merchantId/decide     the page's buttons: outcome approve | decline | pending
 * - GET|POST /RMS/query/q_by_oid.php, /RMS/API/gate-query/index.php, /RMS/q_by_tid.php   requery
 * - GET|POST /RMS/API/chkstat/returnipn.php  IPN echo
 * - GET|POST /RMS/API/refundAPI/index.php    refund; q_by_refID.php, q_by_txn.php refund status
 * - /_control/...                            test control (settle, resend, age, refunds, log,
 *                                            requests, faults, next), see control.ts
 *
 * All state lives in the returned instance; creating one does no I/O.
 */
export function createFiuuSandbox(options: FiuuSandboxOptions): Hono {
  if (!options.merchantId || !options.verifyKey || !options.secretKey) {
    throw new TypeError("the Fiuu sandbox needs merchantId, verifyKey and secretKey");
  }
  if (!URL.canParse(options.notifyUrl)) throw new TypeError(`notifyUrl is not a URL: ${options.notifyUrl}`);
  const state = createSandboxState(options);
  const app = new Hono();
  registerHostedPage(app, state);
  registerServerApis(app, state);
  registerControl(app, state);
  app.notFound((c) => c.text(`The Fiuu sandbox has no route ${c.req.method} ${c.req.path}`, 404));
  app.onError((error, c) => c.text(`Fiuu sandbox error: ${error.message}`, 500));
  return app;
}
