import { createHash } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import { auditInsert } from "../audit.js";
import type { AppDeps } from "../deps.js";
import { executeAll, executeIfUnchanged } from "../../adapters/db/batch.js";
import { executeSql, type Database } from "../../adapters/db/client.js";
import { eventInserts, type EventType } from "../webhooks/events.js";
import { jobInsert } from "../job-queue.js";
import { findPaymentByGatewayOrder, findPaymentVersionByGatewayOrder, lockPaymentByGatewayOrder } from "./queries.js";
import { paymentResource, type PaymentRow } from "./resource.js";
import { decideTransition, type Outcome } from "./transitions.js";
import { channelLabel } from "../../adapters/fiuu/channels.js";
import { readReport, type FiuuStatus, type ReportDetails, type ReportKind } from "../../adapters/fiuu/reports.js";
import { bringRequeryForward, enqueueRequery, firstRequeryDelayMs, requeryJob } from "./requery-queue.js";
import { paymentLockIfUnchanged, paymentUpdate, paymentUpdateIfUnchanged } from "./statements.js";

export type { ReportKind } from "../../adapters/fiuu/reports.js";

export type MessageOutcome = Outcome | "rejected" | "orphan" | "deferred";

export interface ReportResult {
  kind: ReportKind;
  outcome: MessageOutcome;
  payment?: PaymentRow;
  detail: string;
}

/**
 * Applies one message from Fiuu exactly once. Nothing unsigned is believed: a bad skey (or a
 * malformed amount or currency) is stored as rejected and changes nothing; a requery is scheduled
 * instead, when it names a payment. A signed `11` on the return URL is not applied either: the
 * shopper's browser carried it, and Fiuu's own plugins ask before they fail an order, so a requery
 * is brought forward and decides. Everything else signed goes through `applyVerified`.
 */
export async function applyFiuuReport(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<ReportResult> {
  const { merchantId, secretKey } = deps.config.fiuu;
  const read = readReport(fields, { merchantId, secretKey });
  if (read.problem || !read.facts) return rejectReport(deps, read.kind, read.stored, read.signed, read.problem ?? "unreadable");
  if (read.kind === "return" && read.facts.status === "11") return deferReport(deps, read.stored, read.facts.orderId);
  return applyVerified(deps, { kind: read.kind, ...read.facts, details: read.details, stored: read.stored, echo: read.echo, requestId });
}

/** A report whose authenticity is established: a verified skey, or a requery answer with a verified VrfKey. */
export interface VerifiedReport {
  kind: ReportKind;
  /** The gateway order id the report names. */
  orderId: string;
  status: FiuuStatus;
  /** Minor units. */
  amount: number;
  currency: string;
  tranId: string;
  /** What else the report says, each detail only where its source is trusted (lib/adapters/fiuu/reports.ts). */
  details: ReportDetails;
  /** The message as stored in gateway_messages. */
  stored: Record<string, string>;
  /** Fields the IPN echo posts back to Fiuu (notification and return); none for other kinds. */
  echo?: Record<string, string>;
  requestId?: string;
}

/**
 * Applies a verified report exactly once, in two round trips: the payment is read without a lock,
 * the state machine decides, and the decision's writes go as one statement guarded by the row
 * version read (executeIfUnchanged), so that it applies only to the payment it was decided on. When
 * another writer changed the payment in between (a duplicate report on another replica, a refund,
 * a requery), nothing of it is written, and the report is decided again under the payment's row
 * lock, its writes in one statement.
 */
export async function applyVerified(deps: AppDeps, input: VerifiedReport): Promise<ReportResult> {
  const now = deps.now();
  const db = deps.database.db;
  const seen = await findPaymentVersionByGatewayOrder(db, input.orderId);
  let plan: ReportPlan | undefined;
  if (!seen) {
    await storeGatewayMessage(db, orphanMessage(input, now));
    plan = orphanPlan(input.kind);
  } else {
    const decided = planReport(deps, seen.payment, input, now);
    const { id } = seen.payment;
    const guard = decided.changes ? paymentUpdateIfUnchanged(id, seen.version, decided.changes) : paymentLockIfUnchanged(id, seen.version);
    if (await executeIfUnchanged(db, guard, decided.writes)) plan = decided;
  }
  plan ??= await db.transaction(async (tx): Promise<ReportPlan> => {
    const payment = await lockPaymentByGatewayOrder(tx, input.orderId);
    if (!payment) {
      await storeGatewayMessage(tx, orphanMessage(input, now));
      return orphanPlan(input.kind);
    }
    const decided = planReport(deps, payment, input, now);
    await executeAll(tx, decided.changes ? [paymentUpdate(payment.id, decided.changes), ...decided.writes] : decided.writes);
    return decided;
  });
  recordMetrics(deps, plan.result, now, { moved: plan.moved, reportedChannel: input.details.channel });
  for (const type of plan.events) deps.metrics.paymentEvents.inc({ type });
  return plan.result;
}

/** A decided report: the payment's changes (if any), the other writes, and what it comes to. */
interface ReportPlan {
  changes?: Partial<PaymentRow>;
  /** Everything but the payment's update: events and deliveries, the gateway message, jobs, the audit row. */
  writes: SQL[];
  result: ReportResult;
  events: EventType[];
  moved: boolean;
}

const orphanDetail = "no payment has this orderid";
const orphanMessage = (input: VerifiedReport, now: Date): GatewayMessage => ({
  kind: input.kind,
  fields: input.stored,
  signatureValid: true,
  outcome: "orphan",
  detail: orphanDetail,
  now,
});
const orphanPlan = (kind: ReportKind): ReportPlan => ({
  writes: [],
  result: { kind, outcome: "orphan", detail: orphanDetail },
  events: [],
  moved: false,
});

/** What a verified report does to `payment` as it stands: the state machine's decision, as writes. No I/O. */
function planReport(deps: AppDeps, payment: PaymentRow, input: VerifiedReport, now: Date): ReportPlan {
  const { kind, details } = input;
  const report = { status: input.status, amount: input.amount, currency: input.currency, tranId: input.tranId };
  const fields = input.stored;
  const decision = decideTransition(payment, report);
  const settled = decision.next === "succeeded";
  const changes: Partial<PaymentRow> | undefined = decision.next
    ? {
        status: decision.next,
        tranId: settled || payment.tranId === null ? report.tranId : payment.tranId,
        ...(settled ? { appcode: details.appcode ?? null, paidChannel: details.channel ?? null, paydate: details.paydate ?? null } : {}),
        ...(decision.next === "failed" ? { failureCode: details.errorCode ?? null, failureMessage: details.errorDesc ?? null } : {}),
        ...(decision.next === "conflicted"
          ? { failureCode: "amount_mismatch", failureMessage: `Fiuu reported ${input.currency} ${fields.amount ?? ""} (${report.status})` }
          : {}),
        updatedAt: now,
      }
    : // A success first seen on the return URL has no channel; a later server-to-server report fills it in.
      decision.outcome === "duplicate" && payment.status === "succeeded" && !payment.paidChannel && details.channel
      ? { paidChannel: details.channel, updatedAt: now }
      : undefined;
  // The row as the update leaves it (no trigger or default touches it), for the events' data.
  const row: PaymentRow = changes ? { ...payment, ...changes } : payment;

  const writes: SQL[] = [];
  for (const type of decision.events) {
    const event = eventInserts(deps.config.webhooks.urls, {
      type,
      paymentId: payment.id,
      data: {
        ...paymentResource(deps, row, { masked: true }),
        ...(type === "payment.duplicate_charge" ? { duplicate_tran_id: report.tranId } : {}),
      },
      now,
    });
    writes.push(...event.statements);
  }
  writes.push(
    gatewayMessageUpsert({ kind, fields, signatureValid: true, outcome: decision.outcome, detail: decision.reason, paymentId: payment.id, now }),
  );
  if (input.echo) {
    // Fiuu wants every notification echoed back; without it, it sends the notification again.
    writes.push(
      jobInsert({
        kind: "ipn_echo",
        payload: { fields: input.echo },
        dedupeKey: `ipn_echo:${report.tranId}:${report.status}:${kind}`,
        runAt: now,
        maxAttempts: 100,
      }),
    );
  }
  if ((decision.next ?? row.status) === "pending") {
    writes.push(jobInsert(requeryJob(payment.id, new Date(now.getTime() + firstRequeryDelayMs))));
  }
  if (decision.next || decision.events.length > 0) {
    writes.push(
      auditInsert({
        actor: `fiuu:${kind}`,
        action: decision.next ? `payment.${decision.next}` : decision.events[0]!,
        entityType: "payment",
        entityId: payment.id,
        requestId: input.requestId,
        data: { from: payment.status, to: decision.next ?? payment.status, tran_id: report.tranId, fiuu_status: report.status },
      }),
    );
  }
  return {
    changes,
    writes,
    result: { kind, outcome: decision.outcome, payment: row, detail: decision.reason },
    events: decision.events,
    moved: decision.next !== undefined,
  };
}

/**
 * A signed 11 on the return URL: stored as deferred, and the payment's requery brought forward to
 * now, so that Fiuu's own answer decides (the shopper may still have paid).
 */
async function deferReport(deps: AppDeps, fields: Record<string, string>, orderId: string): Promise<ReportResult> {
  const now = deps.now();
  const detail = "a return URL's 11 is confirmed by a requery before it fails the payment";
  const payment = await deps.database.db.transaction(async (tx) => {
    const known = await findPaymentByGatewayOrder(tx, orderId);
    await storeGatewayMessage(tx, {
      kind: "return",
      fields,
      signatureValid: true,
      outcome: known ? "deferred" : "orphan",
      detail,
      paymentId: known?.id,
      now,
    });
    return known;
  });
  // The same genuine return can be posted again by the browser: once per 5 minutes per payment.
  if (payment && (payment.status === "created" || payment.status === "pending")) await bringRequeryForward(deps, payment.id);
  deps.metrics.fiuuMessages.inc({ kind: "return", outcome: payment ? "deferred" : "orphan" });
  return payment
    ? { kind: "return", outcome: "deferred", payment, detail }
    : { kind: "return", outcome: "orphan", detail: "no payment has this orderid" };
}

async function rejectReport(deps: AppDeps, kind: ReportKind, fields: Record<string, string>, signed: boolean, detail: string): Promise<ReportResult> {
  const now = deps.now();
  const payment = await deps.database.db.transaction(async (tx) => {
    const known = await findPaymentByGatewayOrder(tx, fields.orderid ?? "");
    await storeGatewayMessage(tx, { kind, fields, signatureValid: signed, outcome: "rejected", detail, paymentId: known?.id, now });
    // A forged or garbled report may still mean something happened: ask Fiuu instead of believing it.
    // The dedupe key keeps one pending requery per payment, however many bad reports arrive.
    if (known && (known.status === "created" || known.status === "pending")) {
      await enqueueRequery(tx, known.id, now);
    }
    return known;
  });
  deps.metrics.fiuuMessages.inc({ kind, outcome: "rejected" });
  deps.logger.warn({ kind, payment_id: payment?.id, detail }, "Fiuu message rejected");
  return { kind, outcome: "rejected", payment, detail };
}

/** A message from Fiuu to store: what it is, its fields, and what was made of it. */
export interface GatewayMessage {
  kind: ReportKind | "refund_notice";
  fields: Record<string, string>;
  signatureValid: boolean;
  outcome: MessageOutcome;
  detail?: string;
  paymentId?: string;
  refundId?: string;
  /** What the row is indexed by; default the report's own fields (tranID, orderid, status). */
  keys?: { tranId?: string; orderId?: string; status?: string };
  now: Date;
}

/**
 * Stores one message from Fiuu (a report, a requery answer, a refund notice): every row of
 * gateway_messages is written by gatewayMessageUpsert.
 */
export async function storeGatewayMessage(tx: Pick<Database, "execute">, message: GatewayMessage) {
  await executeSql(tx, gatewayMessageUpsert(message));
}

/**
 * The upsert that stores a message from Fiuu, for executeAll with a caller's other writes. The
 * same message again (same kind, fields and signature validity) is counted on the row that holds
 * it rather than stored anew, so repeats cost no storage.
 */
export function gatewayMessageUpsert(message: GatewayMessage): SQL {
  const { fields } = message;
  const keys = message.keys ?? { tranId: fields.tranID, orderId: fields.orderid, status: fields.status };
  const fingerprint = messageFingerprint(message.kind, fields, message.signatureValid);
  const at = message.now.toISOString();
  return sql`insert into gateway_messages (kind, payment_id, refund_id, tran_id, order_id, status, fields, signature_valid, outcome, detail, received_at, fingerprint)
    values (${message.kind}, ${message.paymentId ?? null}, ${message.refundId ?? null}, ${keys.tranId ?? null}, ${keys.orderId ?? null}, ${keys.status ?? null},
      ${JSON.stringify(fields)}::jsonb, ${message.signatureValid}, ${message.outcome}, ${message.detail ?? null}, ${at}::timestamptz, ${fingerprint})
    on conflict (fingerprint) do update set times_received = gateway_messages.times_received + 1, last_received_at = ${at}::timestamptz`;
}

/** What makes two messages the same: kind, signature validity and every stored field. */
function messageFingerprint(kind: string, fields: Record<string, string>, signatureValid: boolean): string {
  const sorted = Object.keys(fields)
    .sort()
    .map((name) => [name, fields[name]]);
  return createHash("sha256")
    .update(JSON.stringify([kind, signatureValid, sorted]))
    .digest("hex");
}

/**
 * Counts a report once its transaction committed. payments_total counts a payment each time it
 * reaches a status, so only a report that moved it counts (a conflict included; a second charge,
 * which moves nothing, does not). Its channel is the one Fiuu reports, for failures too, so that
 * succeeded and failed payments of a channel are counted under the same label.
 */
function recordMetrics(deps: AppDeps, result: ReportResult, now: Date, report: { moved: boolean; reportedChannel?: string }) {
  deps.metrics.fiuuMessages.inc({ kind: result.kind, outcome: result.outcome });
  const payment = result.payment;
  if (result.outcome === "orphan") {
    deps.logger.error({ kind: result.kind }, "Fiuu report for an unknown order (orphan): acknowledged and stored for review");
  }
  if (!payment || !report.moved) return;
  deps.metrics.payments.inc({ status: payment.status, channel: channelLabel(payment.paidChannel ?? report.reportedChannel ?? payment.channel) });
  if (payment.status === "succeeded") {
    deps.metrics.paymentAmount.observe({ currency: payment.currency }, payment.amount / 100);
  }
  if (["succeeded", "failed", "conflicted"].includes(payment.status)) {
    deps.metrics.paymentProcessingDuration.observe({ status: payment.status }, (now.getTime() - payment.createdAt.getTime()) / 1000);
  }
}
