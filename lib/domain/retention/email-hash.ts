import { createHmac, hkdfSync } from "node:crypto";
import { keyIdOf } from "../../core/crypto.js";

/** HKDF's info string: a key for this use only, never the encryption key itself. */
const info = "payment-service customer-email-hash v1";
const version = "h1";

/** The email as it is compared: Unicode NFC, surrounding space trimmed, lower case. */
export function normaliseEmail(email: string): string {
  return email.normalize("NFC").trim().toLowerCase();
}

/** Computes a customer's email hash under each configured ENCRYPTION_KEY (current first). */
export interface EmailHasher {
  /** `h1.<keyId>.<hex>` under the current key: what a new payment stores. */
  hash(email: string): string;
  /** The hash under every known key (current and ENCRYPTION_KEY_PREVIOUS), to look rows up across a rotation. */
  candidates(email: string): string[];
  /** Whether a stored hash was made with the current key. */
  isCurrent(stored: string): boolean;
}

/**
 * HMAC-SHA256 of the normalised email with a key derived from ENCRYPTION_KEY by HKDF-SHA256: the
 * table holds neither the email nor an unkeyed hash anyone could recompute from a list of emails.
 * The key id (that of the ENCRYPTION_KEY it came from) lets a rotation be followed.
 */
export function createEmailHasher(currentKey: Buffer, previousKeys: Buffer[] = []): EmailHasher {
  const derived = [currentKey, ...previousKeys].map((key) => ({
    id: keyIdOf(key),
    key: Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), info, 32)),
  }));
  const hashWith = (entry: { id: string; key: Buffer }, email: string) =>
    `${version}.${entry.id}.${createHmac("sha256", entry.key).update(normaliseEmail(email), "utf8").digest("hex")}`;
  const current = derived[0]!;
  return {
    hash: (email) => hashWith(current, email),
    candidates: (email) => derived.map((entry) => hashWith(entry, email)),
    isCurrent: (stored) => stored.startsWith(`${version}.${current.id}.`),
  };
}

const hashers = new WeakMap<Buffer, EmailHasher>();

/** The hasher for a configuration's keys (cached per key: HKDF runs once). */
export function emailHasherFor(config: { encryptionKey: Buffer; previousEncryptionKeys: Buffer[] }): EmailHasher {
  let hasher = hashers.get(config.encryptionKey);
  if (!hasher) {
    hasher = createEmailHasher(config.encryptionKey, config.previousEncryptionKeys);
    hashers.set(config.encryptionKey, hasher);
  }
  return hasher;
}
