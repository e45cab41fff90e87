import type { IncomingMessage } from 'node:http';
import type { z } from 'zod';
import { PaasError, PaasErrorCodes } from '../../errors.js';

/** The largest JSON body the API reads (1 MiB). */
export const MAX_JSON_BYTES = 1024 * 1024;

/** Reads a JSON body (at most {@link MAX_JSON_BYTES}) and validates it with a zod schema. */
export async function readJson<S extends z.ZodType>(
  req: IncomingMessage,
  schema: S,
): Promise<z.output<S>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_JSON_BYTES) {
      req.resume();
      throw new PaasError(PaasErrorCodes.TOO_LARGE, `the body is over ${MAX_JSON_BYTES} bytes`, {
        status: 413,
      });
    }
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  let value: unknown = {};
  if (text.trim() !== '') {
    try {
      value = JSON.parse(text);
    } catch {
      throw new PaasError(PaasErrorCodes.INVALID_REQUEST, 'the body is not JSON', { status: 400 });
    }
  }
  return validate(schema, value);
}

/** Validates a value with a zod schema; a mismatch is a 422 naming the field. */
export function validate<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue && issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : '';
  // A bad record key says "Invalid key in record": the key's own schema says what is wrong.
  const inner = issue?.code === 'invalid_key' ? issue.issues[0]?.message : undefined;
  throw new PaasError(
    PaasErrorCodes.INVALID_REQUEST,
    `${where}${inner ?? issue?.message ?? 'invalid input'}`,
    {
      status: 422,
    },
  );
}
