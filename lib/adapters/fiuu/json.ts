// Fiuu's JSON answers write some amounts as JSON numbers (`"Amount": 30.00`, FIUU.md §3 and §4),
// while its signatures cover the number's text ("30.00"). JSON.parse would turn that into 30, so
// this reader keeps every number as the exact text it was written with.

/** A parsed JSON value whose numbers are kept as their source text. */
export type TextJson = string | boolean | null | TextJson[] | { [name: string]: TextJson };

const numberToken = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

/**
 * Parses JSON like JSON.parse, except that each number becomes a string of its exact source text
 * (`30.00` stays "30.00", `19` becomes "19"). Throws SyntaxError for text that is not JSON.
 */
export function parseJsonKeepingNumbers(text: string): TextJson {
  // Each bare number is quoted (strings are copied through untouched), then JSON.parse does the rest.
  let quoted = "";
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      let end = i + 1;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      quoted += text.slice(i, end + 1);
      i = end + 1;
    } else if (ch === "-" || (ch >= "0" && ch <= "9")) {
      numberToken.lastIndex = i;
      const match = numberToken.exec(text);
      if (!match) throw new SyntaxError(`Unexpected character in JSON at position ${i}`);
      quoted += `"${match[0]}"`;
      i += match[0].length;
    } else {
      quoted += ch;
      i++;
    }
  }
  return JSON.parse(quoted) as TextJson;
}

/** One flat object of a Fiuu answer: every value as text (nested values as their JSON). */
export function textFields(value: TextJson): Record<string, string> | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const fields: Record<string, string> = {};
  for (const [name, field] of Object.entries(value)) {
    fields[name] = typeof field === "string" ? field : field === null ? "" : typeof field === "boolean" ? String(field) : JSON.stringify(field);
  }
  return fields;
}

/**
 * Reads a JSON body as one object or a list of objects of text fields; undefined when the body is
 * not JSON, or not an object or a list of objects.
 */
export function parseJsonFields(body: string): Record<string, string> | Record<string, string>[] | undefined {
  let parsed: TextJson;
  try {
    parsed = parseJsonKeepingNumbers(body);
  } catch {
    return undefined;
  }
  if (Array.isArray(parsed)) {
    const all = parsed.map(textFields);
    return all.every((f): f is Record<string, string> => f !== undefined) ? all : undefined;
  }
  return textFields(parsed);
}
