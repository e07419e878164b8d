ALTER TABLE "gateway_messages" ADD COLUMN "fingerprint" text;--> statement-breakpoint
ALTER TABLE "gateway_messages" ADD COLUMN "times_received" integer DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE "gateway_messages" ADD COLUMN "last_received_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "beneficiary" text;--> statement-breakpoint
ALTER TABLE "refunds" ADD COLUMN "beneficiary_masked" jsonb;--> statement-breakpoint
CREATE UNIQUE INDEX "gateway_messages_fingerprint_key" ON "gateway_messages" USING btree ("fingerprint");