import { eq, sql } from "drizzle-orm";
import { payments } from "../../drizzle/schema.js";
import { appendAudit } from "../audit.js";
import type { AppDeps } from "../context.js";
import { executeAll, StatementBatch } from "../db/batch.js";
import { queryRows, type Database } from "../db/client.js";
import { columnsOf, rowOf, updateById } from "../db/rows.js";
import { recordEvent, type EventType } from "../events.js";
import { enqueueJob } from "../jobs/queue.js";
import { parseFiuuAmount } from "../money.js";
import { paymentResource, type PaymentRow } from "./resource.js";
import { decideTransition, type FiuuStatus, type Outcome } from "./transitions.js";
import { verifySkey } from "../fiuu/signatures.js";

/** Where a report came from: Fiuu's three callbacks by their `nbcb`, or our own requery. */
export type ReportKind = "return" | "notification" | "callback" | "requery";

export type MessageOutcome = Outcome | "rejected" | "orphan";

export interface ReportResult {
  kind: ReportKind;
  outcome: MessageOutcome;
  payment?: PaymentRow;
  detail: string;
}

/** A report is treated by its nbcb, whichever URL it arrived at: 1 callback, 2 notification, none return. */
export function reportKind(fields: Record<string, string>): ReportKind {
  if (fields.nbcb === "1") return "callback";
  if (fields.nbcb === "2") return "notification";
  return "return";
}

const fiuuStatuses = new Set(["00", "11", "22"]);
/**
 * Schedules the reconcile requery of a payment, one pending per payment whoever asks (checkout
 * start, a pending report, a report that failed its signature). Its many attempts are bounded by
 * time (24 h), not by count: waiting for Fiuu's query slot is not a failure.
 */
export async function enqueueRequery(tx: Pick<Database, "execute">, paymentId: string, runAt: Date, options: { sooner?: boolean } = {}) {
  await enqueueJob(tx, { kind: "requery", payload: { paymentId }, dedupeKey: `requery:${paymentId}`, runAt, maxAttempts: 1000, sooner: options.sooner });
}

/** The first requery after a checkout starts or a payment turns pending. */
export const firstRequeryDelayMs = 60_000;

/**
 * Applies one message from Fiuu exactly once. Nothing unsigned is believed: a bad skey is stored
 * as rejected and changes nothing (a requery is scheduled instead, when it names a payment).
 * A signed report is applied under the payment's row lock, with its state change, audit row,
 * events and IPN echo in one transaction, so duplicates over any URL or replica change nothing.
 */
export async function applyFiuuReport(deps: AppDeps, fields: Record<string, string>, requestId?: string): Promise<ReportResult> {
  const kind = reportKind(fields);
  const signed = verifySkey(fields, deps.config.fiuu.secretKey!);
  const amount = parseFiuuAmount(fields.amount ?? "");
  const problem = !signed
    ? "skey does not verify"
    : !fiuuStatuses.has(fields.status ?? "")
      ? `unknown status ${fields.status}`
      : amount === undefined
        ? "amount is not a Fiuu amount"
        : fields.domain !== deps.config.fiuu.merchantId
          ? "domain is not this merchant"
          : undefined;
  if (problem) return rejectReport(deps, kind, fields, signed, problem);

  return applyVerified(deps, {
    kind,
    fields,
    report: { status: fields.status as FiuuStatus, amount: amount!, currency: fields.currency!, tranId: fields.tranID! },
    requestId,
  });
}

/** Applies a report whose authenticity is established (a verified skey, or a requery answer with a verified VrfKey). */
export async function applyVerified(
  deps: AppDeps,
  input: {
    kind: ReportKind;
    fields: Record<string, string>;
    report: { status: FiuuStatus; amount: number; currency: string; tranId: string };
    requestId?: string;
  },
): Promise<ReportResult> {
  const { kind, fields, report } = input;
  const now = deps.now();
  let emitted: EventType[] = [];
  const result = await deps.database.db.transaction(async (tx): Promise<ReportResult> => {
    const [locked] = await queryRows<Record<string, unknown>>(
      tx,
      sql`select ${columnsOf(payments)} from payments where gateway_order_id = ${fields.orderid ?? ""} limit 1 for update`,
    );
    const payment = locked && rowOf(payments, locked);
    if (!payment) {
      await storeMessage(tx, { kind, fields, signatureValid: true, outcome: "orphan", detail: "no payment has this orderid", now });
      return { kind, outcome: "orphan", detail: "no payment has this orderid" };
    }
    const decision = decideTransition(payment, report);
    emitted = decision.events;
    const settled = decision.next === "succeeded";
    const changes: Partial<PaymentRow> | undefined = decision.next && {
      status: decision.next,
      tranId: settled || payment.tranId === null ? report.tranId : payment.tranId,
      ...(settled ? { appcode: fields.appcode || null, paidChannel: fields.channel || null, paydate: fields.paydate || null } : {}),
      ...(decision.next === "failed" ? { failureCode: fields.error_code || null, failureMessage: fields.error_desc || null } : {}),
      ...(decision.next === "conflicted"
        ? { failureCode: "amount_mismatch", failureMessage: `Fiuu reported ${fields.currency} ${fields.amount} (${report.status})` }
        : {}),
      updatedAt: now,
    };
    // The row as the update leaves it (no trigger or default touches it), for the events' data.
    const row: PaymentRow = changes ? { ...payment, ...changes } : payment;

    // The decision is made; its writes go to the database together, as one statement.
    const batch = new StatementBatch();
    if (changes) await batch.execute(updateById(payments, payment.id, changes));
    for (const type of decision.events) {
      await recordEvent(batch, deps.config.webhooks.urls, {
        type,
        paymentId: payment.id,
        data: { ...paymentResource(deps, row, { masked: true }), ...(type === "payment.duplicate_charge" ? { duplicate_tran_id: report.tranId } : {}) },
        now,
      });
    }
    await storeMessage(batch, { kind, fields, signatureValid: true, outcome: decision.outcome, detail: decision.reason, paymentId: payment.id, now });
    if (kind === "notification" || kind === "return") {
      // Fiuu wants every notification echoed back; without it, it sends the notification again.
      await enqueueJob(batch, {
        kind: "ipn_echo",
        payload: { fields },
        dedupeKey: `ipn_echo:${fields.tranID}:${fields.status}:${kind}`,
        runAt: now,
        maxAttempts: 100,
      });
    }
    if ((decision.next ?? row.status) === "pending") {
      await enqueueRequery(batch, payment.id, new Date(now.getTime() + firstRequeryDelayMs));
    }
    if (decision.next || decision.events.length > 0) {
      await appendAudit(batch, {
        actor: `fiuu:${kind}`,
        action: decision.next ? `payment.${decision.next}` : decision.events[0]!,
        entityType: "payment",
        entityId: payment.id,
        requestId: input.requestId,
        data: { from: payment.status, to: decision.next ?? payment.status, tran_id: report.tranId, fiuu_status: report.status },
      });
    }
    await executeAll(tx, batch.statements);
    return { kind, outcome: decision.outcome, payment: row, detail: decision.reason };
  });
  recordMetrics(deps, result, now);
  for (const type of emitted) deps.metrics.paymentEvents.inc({ type });
  return result;
}

async function rejectReport(
  deps: AppDeps,
  kind: ReportKind,
  fields: Record<string, string>,
  signed: boolean,
  detail: string,
): Promise<ReportResult> {
  const now = deps.now();
  const payment = await deps.database.db.transaction(async (tx) => {
    const [known] = await tx.select().from(payments).where(eq(payments.gatewayOrderId, fields.orderid ?? "")).limit(1);
    await storeMessage(tx, { kind, fields, signatureValid: signed, outcome: "rejected", detail, paymentId: known?.id, now });
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

async function storeMessage(
  tx: Pick<Database, "execute">,
  message: { kind: ReportKind; fields: Record<string, string>; signatureValid: boolean; outcome: MessageOutcome; detail: string; paymentId?: string; now: Date },
) {
  const { fields } = message;
  await tx.execute(sql`insert into gateway_messages (kind, payment_id, tran_id, order_id, status, fields, signature_valid, outcome, detail, received_at)
    values (${message.kind}, ${message.paymentId ?? null}, ${fields.tranID ?? null}, ${fields.orderid ?? null}, ${fields.status ?? null},
      ${JSON.stringify(fields)}::jsonb, ${message.signatureValid}, ${message.outcome}, ${message.detail}, ${message.now.toISOString()}::timestamptz)`);
}

function recordMetrics(deps: AppDeps, result: ReportResult, now: Date) {
  deps.metrics.fiuuMessages.inc({ kind: result.kind, outcome: result.outcome });
  const payment = result.payment;
  if (result.outcome === "orphan") {
    deps.logger.error({ kind: result.kind }, "Fiuu report for an unknown order (orphan): acknowledged and stored for review");
  }
  if (!payment || result.outcome !== "applied") return;
  deps.metrics.payments.inc({ status: payment.status, channel: payment.paidChannel ?? payment.channel ?? "any" });
  if (payment.status === "succeeded") {
    deps.metrics.paymentAmount.observe({ currency: payment.currency }, payment.amount / 100);
  }
  if (["succeeded", "failed", "conflicted"].includes(payment.status)) {
    deps.metrics.paymentProcessingDuration.observe({ status: payment.status }, (now.getTime() - payment.createdAt.getTime()) / 1000);
  }
}
