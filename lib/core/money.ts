/** Currencies the service accepts; all of them have two decimals at Fiuu's boundary. */
export const supportedCurrencies = ["MYR", "SGD", "USD", "THB", "PHP", "IDR"] as const;

export type Currency = (typeof supportedCurrencies)[number];

/** Whether a text is one of the supported currency codes (exact, upper case). */
export function isCurrency(text: string): text is Currency {
  return (supportedCurrencies as readonly string[]).includes(text);
}

/**
 * Formats minor units as Fiuu's amount string: 1 → "0.01", 1050 → "10.50", 100000000 → "1000000.00".
 * Never a thousands separator: Fiuu hashes the exact string, and "1,000.00" breaks every signature.
 */
export function toFiuuAmount(minor: number): string {
  if (!Number.isSafeInteger(minor) || minor < 0) {
    throw new RangeError(`amount must be a non-negative safe integer of minor units, got ${String(minor)}`);
  }
  // Integer arithmetic only: toFixed() would go through binary floating point.
  const whole = Math.floor(minor / 100);
  const cents = minor % 100;
  return `${whole}.${cents < 10 ? "0" : ""}${cents}`;
}

// Plain ASCII digits, no sign, no exponent, no separators, no surrounding space, at most 2 decimals.
// A leading zero only as the sole integer digit ("0.50"), so one amount has few spellings.
const fiuuAmountPattern = /^(0|[1-9][0-9]*)(?:\.([0-9]{1,2}))?$/;

/** Parses Fiuu's amount string ("10", "10.5", "10.50") into minor units; undefined if it is not one. */
export function parseFiuuAmount(text: string): number | undefined {
  const match = fiuuAmountPattern.exec(text);
  if (!match) return undefined;
  // BigInt so that a huge integer part is refused instead of silently rounded.
  const minor = BigInt(match[1]!) * 100n + BigInt((match[2] ?? "").padEnd(2, "0"));
  return minor <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(minor) : undefined;
}
