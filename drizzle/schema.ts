import { sql } from "drizzle-orm";
import { bigint, bigserial, boolean, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";

const createdAt = () => timestamp("created_at", { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp("updated_at", { withTimezone: true }).notNull().defaultNow();
/** Money is always an integer of minor units (sen for MYR); JS numbers hold it exactly below 2^53. */
const money = (name: string) => bigint(name, { mode: "number" });

export const paymentStatuses = ["created", "pending", "succeeded", "failed", "cancelled", "expired", "conflicted"] as const;
export type PaymentStatus = (typeof paymentStatuses)[number];

export const payments = pgTable(
  "payments",
  {
    id: text("id").primaryKey(),
    orderId: text("order_id").notNull(),
    amount: money("amount").notNull(),
    currency: text("currency").notNull(),
    status: text("status", { enum: paymentStatuses }).notNull().default("created"),
    channel: text("channel"),
    description: text("description").notNull(),
    /**
     * AES-256-GCM ciphertexts (`keyId:nonce.ciphertext.tag`), never plain text; null once erased
     * (retention or a customer's request, lib/domain/retention), when `erased_at` says when.
     */
    customerName: text("customer_name"),
    customerEmail: text("customer_email"),
    customerMobile: text("customer_mobile"),
    /**
     * `h1.<keyId>.<hex>`: HMAC-SHA256 of the normalised email under a key derived from
     * ENCRYPTION_KEY (lib/domain/retention/email-hash.ts), to find a customer's payments for erasure.
     * Null for rows written before it existed until the retention job backfills it, and once erased.
     */
    customerEmailHash: text("customer_email_hash"),
    erasedAt: timestamp("erased_at", { withTimezone: true }),
    returnUrl: text("return_url"),
    metadata: jsonb("metadata").$type<Record<string, string>>().notNull().default({}),
    clientSecretHash: text("client_secret_hash").notNull(),
    gatewayOrderId: text("gateway_order_id").notNull(),
    tranId: text("tran_id"),
    appcode: text("appcode"),
    paidChannel: text("paid_channel"),
    paydate: text("paydate"),
    failureCode: text("failure_code"),
    failureMessage: text("failure_message"),
    amountRefunded: money("amount_refunded").notNull().default(0),
    /** Sum of refunds that have not failed; the database refuses to let it pass the amount. */
    amountRefundReserved: money("amount_refund_reserved").notNull().default(0),
    createdBy: text("created_by").notNull(),
    checkoutStartedAt: timestamp("checkout_started_at", { withTimezone: true }),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("payments_gateway_order_id_key").on(t.gatewayOrderId),
    uniqueIndex("payments_tran_id_key").on(t.tranId),
    // One open payment per order: two creates racing for an order both insert an open payment,
    // so this index refuses the second. Succeeded payments are left to the create's own check, so
    // that a late success on an old attempt can still be recorded.
    uniqueIndex("payments_one_open_per_order").on(t.orderId).where(sql`status in ('created', 'pending')`),
    index("payments_order_id_idx").on(t.orderId),
    index("payments_status_idx").on(t.status, t.id),
    index("payments_customer_email_hash_idx").on(t.customerEmailHash),
    // Rows written before customer_email_hash existed, for the retention job's backfill.
    index("payments_customer_email_hash_missing_idx").on(t.id).where(sql`customer_email_hash is null and customer_email is not null`),
    // The retention job's candidates: final payments still holding personal data, oldest first.
    index("payments_personal_data_kept_idx")
      .on(t.updatedAt)
      .where(sql`erased_at is null and status in ('succeeded', 'failed', 'cancelled', 'expired')`),
    check("payments_amount_positive", sql`${t.amount} > 0`),
    check("payments_status_known", sql.raw(`status in (${paymentStatuses.map((s) => `'${s}'`).join(", ")})`)),
    check(
      "payments_refunds_within_amount",
      sql`${t.amountRefunded} >= 0 and ${t.amountRefunded} <= ${t.amountRefundReserved} and ${t.amountRefundReserved} <= ${t.amount}`,
    ),
    check("payments_gateway_order_id_format", sql`${t.gatewayOrderId} ~ '^[A-Za-z0-9]{1,40}$'`),
  ],
);

export const refundStatuses = ["pending", "succeeded", "failed"] as const;
export type RefundStatus = (typeof refundStatuses)[number];

export const refunds = pgTable(
  "refunds",
  {
    id: text("id").primaryKey(),
    paymentId: text("payment_id")
      .notNull()
      .references(() => payments.id),
    amount: money("amount").notNull(),
    currency: text("currency").notNull(),
    reason: text("reason"),
    status: text("status", { enum: refundStatuses }).notNull().default("pending"),
    refId: text("ref_id").notNull(),
    fiuuRefundId: text("fiuu_refund_id"),
    /**
     * Where a non-card refund is paid (Fiuu's PR014): an AES-256-GCM ciphertext of the JSON
     * `{ bank_code, name, account_number, country }`, never plain text; null for card refunds.
     */
    beneficiary: text("beneficiary"),
    /** What answers and webhooks show of the beneficiary: bank, country and the account's last 4 digits. */
    beneficiaryMasked: jsonb("beneficiary_masked").$type<{ bank_code: string; country: string; account_number_last4: string }>(),
    failureCode: text("failure_code"),
    failureMessage: text("failure_message"),
    createdBy: text("created_by").notNull(),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("refunds_ref_id_key").on(t.refId),
    index("refunds_payment_id_idx").on(t.paymentId),
    check("refunds_amount_positive", sql`${t.amount} > 0`),
    check("refunds_status_known", sql.raw(`status in (${refundStatuses.map((s) => `'${s}'`).join(", ")})`)),
  ],
);

/** `deferred`: signed, but not applied as it stands (a return URL's 11): a requery decides. */
export const gatewayMessageOutcomes = ["applied", "duplicate", "stale", "conflict", "rejected", "orphan", "deferred"] as const;

export const gatewayMessages = pgTable(
  "gateway_messages",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    /** return, notification, callback, requery, refund_notice, refund_answer */
    kind: text("kind").notNull(),
    paymentId: text("payment_id").references(() => payments.id),
    refundId: text("refund_id").references(() => refunds.id),
    tranId: text("tran_id"),
    orderId: text("order_id"),
    status: text("status"),
    fields: jsonb("fields").$type<Record<string, string>>().notNull(),
    signatureValid: boolean("signature_valid").notNull(),
    outcome: text("outcome", { enum: gatewayMessageOutcomes }).notNull(),
    detail: text("detail"),
    receivedAt: timestamp("received_at", { withTimezone: true }).notNull().defaultNow(),
    /**
     * A hash of a signed message's kind and stored fields: the same signed message received again
     * is counted on its first row (`times_received`, `last_received_at`) instead of stored again.
     */
    fingerprint: text("fingerprint"),
    timesReceived: integer("times_received").notNull().default(1),
    lastReceivedAt: timestamp("last_received_at", { withTimezone: true }),
    /** When retention replaced `fields` by its marker; outcome, ids and timestamps stay. */
    fieldsErasedAt: timestamp("fields_erased_at", { withTimezone: true }),
  },
  (t) => [
    index("gateway_messages_payment_id_idx").on(t.paymentId),
    index("gateway_messages_fields_kept_idx").on(t.receivedAt).where(sql`fields_erased_at is null`),
    index("gateway_messages_tran_id_idx").on(t.tranId),
    uniqueIndex("gateway_messages_fingerprint_key").on(t.fingerprint),
  ],
);

export const events = pgTable(
  "events",
  {
    id: text("id").primaryKey(),
    type: text("type").notNull(),
    paymentId: text("payment_id").references(() => payments.id),
    refundId: text("refund_id").references(() => refunds.id),
    data: jsonb("data").$type<Record<string, unknown>>().notNull(),
    createdAt: createdAt(),
    /** When retention replaced the delivered body `data` by its marker; the event and its deliveries stay. */
    dataErasedAt: timestamp("data_erased_at", { withTimezone: true }),
  },
  (t) => [
    index("events_type_idx").on(t.type, t.id),
    index("events_payment_id_idx").on(t.paymentId),
    index("events_data_kept_idx").on(t.createdAt).where(sql`data_erased_at is null`),
  ],
);

export const deliveryStatuses = ["pending", "delivered", "failed"] as const;

export const eventDeliveries = pgTable(
  "event_deliveries",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    eventId: text("event_id")
      .notNull()
      .references(() => events.id),
    receiver: text("receiver").notNull(),
    status: text("status", { enum: deliveryStatuses }).notNull().default("pending"),
    attempts: integer("attempts").notNull().default(0),
    nextAttemptAt: timestamp("next_attempt_at", { withTimezone: true }).notNull().defaultNow(),
    lockedUntil: timestamp("locked_until", { withTimezone: true }),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    deliveredAt: timestamp("delivered_at", { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("event_deliveries_event_receiver_key").on(t.eventId, t.receiver),
    index("event_deliveries_due_idx").on(t.nextAttemptAt).where(sql`status = 'pending'`),
  ],
);

export const jobStatuses = ["pending", "done", "failed"] as const;

export const jobs = pgTable(
  "jobs",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    /** ipn_echo, requery, expire, refund_poll */
    kind: text("kind").notNull(),
    payload: jsonb("payload").$type<Record<string, unknown>>().notNull(),
    /** At most one pending job per key, e.g. one requery per payment. */
    dedupeKey: text("dedupe_key"),
    status: text("status", { enum: jobStatuses }).notNull().default("pending"),
    runAt: timestamp("run_at", { withTimezone: true }).notNull().defaultNow(),
    attempts: integer("attempts").notNull().default(0),
    maxAttempts: integer("max_attempts").notNull().default(20),
    lockedUntil: timestamp("locked_until", { withTimezone: true }),
    lastError: text("last_error"),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex("jobs_pending_dedupe_key").on(t.dedupeKey).where(sql`status = 'pending'`),
    index("jobs_due_idx").on(t.kind, t.runAt).where(sql`status = 'pending'`),
  ],
);

/**
 * Append-only and hash-chained. Rows are inserted unsealed (seq, prev_hash and hash null), so no
 * writer waits on another; `audit_log_seal()` then links them into one chain in sealing order,
 * under a lock, a batch at a time. A trigger refuses DELETE, TRUNCATE and every UPDATE except a
 * seal of an unsealed row (see the custom migrations).
 */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    seq: bigint("seq", { mode: "number" }),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    entityType: text("entity_type").notNull(),
    entityId: text("entity_id").notNull(),
    requestId: text("request_id"),
    data: jsonb("data").$type<Record<string, unknown>>().notNull().default({}),
    prevHash: text("prev_hash"),
    hash: text("hash"),
  },
  (t) => [
    uniqueIndex("audit_log_seq_key").on(t.seq),
    index("audit_log_entity_idx").on(t.entityType, t.entityId),
    index("audit_log_unsealed_idx").on(t.id).where(sql`seq is null`),
  ],
);

export const paymentMethodTypes = ["card", "online_banking", "ewallet", "qr", "cash", "bnpl"] as const;

export const paymentMethods = pgTable("payment_methods", {
  code: text("code").primaryKey(),
  name: text("name").notNull(),
  type: text("type", { enum: paymentMethodTypes }).notNull(),
  currencies: text("currencies").array().notNull(),
  minAmount: money("min_amount").notNull(),
  maxAmount: money("max_amount"),
  enabled: boolean("enabled").notNull().default(true),
  sortOrder: integer("sort_order").notNull().default(0),
});
