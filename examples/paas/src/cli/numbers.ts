import { PaasError, PaasErrorCodes } from '../errors.js';
import { quoted } from '../internal/quoted.js';

/** What a whole-number CLI value is, for {@link wholeNumber}'s message. */
export interface WholeNumberRule {
  /** Where the value was given: `-n/--num`, `--timeout`, `web=`. */
  readonly option: string;
  /** What it counts, for the message: `a number of lines`. */
  readonly what: string;
  readonly min: number;
  readonly max: number;
  /** A good value as typed: `-n 200`. */
  readonly example: string;
}

/**
 * Reads a whole number given on the command line: digits only (no sign, fraction, exponent,
 * spaces or hex), from `rule.min` to `rule.max`. Anything else is `FLOTILLA_PAAS_INVALID_REQUEST`
 * saying what was wrong and what to give, checked before the API is called (the server's schema
 * answered in its validator's words).
 */
export function wholeNumber(value: string, rule: WholeNumberRule): number {
  const shown = quoted(value);
  const range = `give a whole number from ${rule.min} to ${rule.max} (${rule.example})`;
  if (!/^\d{1,15}$/.test(value))
    throw new PaasError(
      PaasErrorCodes.INVALID_REQUEST,
      `${rule.option}: ${shown} is not ${rule.what}: ${range}`,
    );
  const n = Number(value);
  if (n < rule.min || n > rule.max)
    throw new PaasError(
      PaasErrorCodes.INVALID_REQUEST,
      `${rule.option}: ${n} is out of range for ${rule.what}: ${range}`,
    );
  return n;
}
