-- Personal data retention (issue #22). customer_email_hash cannot be computed here: its key is derived from
-- ENCRYPTION_KEY, which the database never sees. The retention job backfills rows lacking one (lib/retention).
ALTER TABLE "payments" ALTER COLUMN "customer_name" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "payments" ALTER COLUMN "customer_email" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "events" ADD COLUMN "data_erased_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "gateway_messages" ADD COLUMN "fields_erased_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "customer_email_hash" text;--> statement-breakpoint
ALTER TABLE "payments" ADD COLUMN "erased_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "events_data_kept_idx" ON "events" USING btree ("created_at") WHERE data_erased_at is null;--> statement-breakpoint
CREATE INDEX "gateway_messages_fields_kept_idx" ON "gateway_messages" USING btree ("received_at") WHERE fields_erased_at is null;--> statement-breakpoint
CREATE INDEX "payments_customer_email_hash_idx" ON "payments" USING btree ("customer_email_hash");--> statement-breakpoint
CREATE INDEX "payments_customer_email_hash_missing_idx" ON "payments" USING btree ("id") WHERE customer_email_hash is null and customer_email is not null;--> statement-breakpoint
CREATE INDEX "payments_personal_data_kept_idx" ON "payments" USING btree ("updated_at") WHERE erased_at is null and status in ('succeeded', 'failed', 'cancelled', 'expired');