import { createHash } from "node:crypto";
import type { Config } from "../../lib/core/config.js";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

let tranCounter = 0;
/** A fresh Fiuu tranID (digits). */
export const newTranId = () => String(7_000_000_000 + (Date.now() % 1_000_000_000) + ++tranCounter);

/**
 * A report as Fiuu sends it, signed the way FIUU.md §2 says — computed here independently of the
 * service's own signature code, so a mistake there cannot hide in both.
 */
export function signedReport(
  fiuu: Pick<Config["fiuu"], "merchantId" | "secretKey">,
  report: { orderid: string; status: "00" | "11" | "22"; amount: string; currency?: string; tranID?: string; nbcb?: "1" | "2"; appcode?: string },
  options: { signAmount?: string; secretKey?: string } = {},
): Record<string, string> {
  const fields: Record<string, string> = {
    tranID: report.tranID ?? newTranId(),
    orderid: report.orderid,
    status: report.status,
    domain: fiuu.merchantId,
    amount: report.amount,
    currency: report.currency ?? "MYR",
    appcode: report.appcode ?? (report.status === "00" ? "123456" : ""),
    paydate: "2026-11-26 12:30:00",
    channel: "maybank2u",
    ...(report.status === "11" ? { error_code: "FPX_1A", error_desc: "Declined by bank" } : {}),
    ...(report.nbcb ? { nbcb: report.nbcb } : {}),
  };
  const key0 = md5(fields.tranID! + fields.orderid! + fields.status! + fields.domain! + (options.signAmount ?? fields.amount!) + fields.currency!);
  fields.skey = md5(fields.paydate! + fields.domain! + key0 + fields.appcode! + (options.secretKey ?? fiuu.secretKey));
  return fields;
}

/** A form POST of these fields. */
export function formPost(fields: Record<string, string>): RequestInit {
  return { method: "POST", body: new URLSearchParams(fields), headers: { "content-type": "application/x-www-form-urlencoded" } };
}
