import { secureRandomBytes } from "./crypto.js";

const alphabet = "0123456789abcdefghjkmnpqrstvwxyz"; // Crockford base32, lower case

/**
 * A prefixed id that sorts by creation time: `pay_` + 10 characters of milliseconds + 16 random
 * characters (80 bits). Alphanumeric after the prefix, so it also serves as Fiuu's orderid.
 */
export function newId(prefix: string, now: number = Date.now()): string {
  let time = "";
  for (let t = now, i = 0; i < 10; i++, t = Math.floor(t / 32)) time = alphabet[t % 32] + time;
  const random = secureRandomBytes(10);
  let tail = "";
  for (let bits = 0, value = 0, i = 0; i < random.length; i++) {
    value = (value << 8) | random[i]!;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      tail += alphabet[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return `${prefix}_${time}${tail}`;
}
