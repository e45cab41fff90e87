import { z } from 'zod';
import { MAX_DRAIN_DEADLINE_MS } from '@flotilla/cluster';

/** The most lines `GET /apps/{app}/log-stream?lines=` returns (`flotilla logs -n`). */
export const MAX_LOG_LINES = 1500;
/** The most dynos of one process type a formation update asks for (`flotilla ps:scale`). */
export const MAX_SCALE = 10_000;
/** The longest one-off timeout, in seconds (`flotilla run --timeout`). */
export const MAX_RUN_TIMEOUT_S = 86_400;

/** An app name: a DNS label (what `<app>.localhost` needs). */
export const appName = z
  .string()
  .regex(
    /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/,
    'an app name is a DNS label: 1 to 63 of a-z 0-9 -, starting with a letter, not ending with -',
  );

const noNul = (s: string): boolean => !s.includes('\0');

/** `POST /apps`. */
export const createAppBody = z.strictObject({
  name: appName.optional(),
  meta: z.record(z.string().max(128), z.string().max(1024)).optional(),
});

/** A config var name. */
export const configKey = z
  .string()
  .regex(
    /^[A-Za-z_][A-Za-z0-9_]{0,255}$/,
    'a config var name is [A-Za-z_][A-Za-z0-9_]*, up to 256 characters',
  );

/** `PATCH /apps/{app}/config-vars`: `null` unsets. */
export const configPatchBody = z
  .record(
    configKey,
    z
      .string()
      .max(64 * 1024)
      .refine(noNul, 'a value must not contain NUL')
      .nullable(),
  )
  .refine((o) => Object.keys(o).length > 0, 'give at least one config var')
  .refine((o) => Object.keys(o).length <= 500, 'at most 500 config vars at once');

/** A process type name. */
export const processType = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/,
    'a process type is a-z A-Z 0-9 _ -, up to 63 characters',
  );

/** One formation change. */
export const formationUpdate = z.strictObject({
  type: processType,
  quantity: z.number().int('quantity must be a whole number').min(0).max(MAX_SCALE).optional(),
  size: z.string().min(1).max(64).optional(),
});

/** `PATCH /apps/{app}/formation`: Heroku's batch update. */
export const formationBatchBody = z.strictObject({
  updates: z
    .array(formationUpdate)
    .min(1, 'give at least one update')
    .max(100)
    .refine(
      (u) => new Set(u.map((x) => x.type)).size === u.length,
      'give each process type once (two updates of one type would leave the last silently)',
    ),
});

/** `PATCH /apps/{app}/formation/{type}`. */
export const formationOneBody = formationUpdate.omit({ type: true });

/** `POST /apps/{app}/dynos`: a one-off run. */
export const runBody = z.strictObject({
  command: z
    .string()
    .min(1, 'give a command')
    .max(64 * 1024)
    .refine(noNul, 'a command must not contain NUL'),
  env: z
    .record(
      configKey,
      z
        .string()
        .max(64 * 1024)
        .refine(noNul, 'no NUL'),
    )
    .optional(),
  size: z.string().min(1).max(64).optional(),
  release: z
    .string()
    .regex(/^v\d{1,9}$/, 'a release is vN')
    .optional(),
  /** Seconds. */
  timeout: z.number().int().min(1).max(MAX_RUN_TIMEOUT_S).optional(),
});

/** `POST /apps/{app}/domains`. */
export const domainBody = z.strictObject({
  hostname: z
    .string()
    .max(253)
    .regex(
      /^(\*\.)?([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i,
      'a hostname is DNS labels separated by dots, optionally starting with *.',
    ),
});

/** A release: `v3` or `3`. */
export const releaseId = z.string().regex(/^v?\d{1,9}$/, 'a release is vN (v3)');

/** `POST /apps/{app}/releases`: a rollback, to `release` or the one before the live one. */
export const rollbackBody = z.strictObject({ release: releaseId.optional() });

/** `GET /apps/{app}/log-stream` query. */
export const logQuery = z.object({
  lines: z.coerce.number().int().min(0).max(MAX_LOG_LINES).default(100),
  tail: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((s) => s === 'true' || s === '1'),
  type: processType.optional(),
  dyno: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}\.\d{1,6}$/, 'a dyno is type.N (web.1)')
    .optional(),
});

/** A build id. */
export const buildId = z.string().regex(/^b-[0-9a-f]{12}$/, 'a build id is b- and 12 hex digits');

/** An artifact digest. */
export const digest = z.string().regex(/^[0-9a-f]{64}$/, 'an artifact is named by its hex sha256');

/** A host id, as `flotilla host --host-id` takes it: a DNS label. */
export const hostId = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'a host id is a DNS label: 1 to 63 of a-z 0-9 -');

/** `PATCH /hosts/{host}`: the operator's settings for a host. */
export const hostPatchBody = z
  .strictObject({
    drain: z.boolean().optional(),
    eligible: z.boolean().optional(),
    reason: z.string().max(256).refine(noNul, 'a reason must not contain NUL').optional(),
    /** With `drain: true`: how long the drain waits for replacements before forcing the rest off. */
    deadline_ms: z
      .number()
      .int('deadline_ms is a whole number of ms')
      .min(1, 'deadline_ms is at least 1')
      .max(MAX_DRAIN_DEADLINE_MS, 'deadline_ms is at most 365 days')
      .optional(),
  })
  .refine(
    (b) => b.drain !== undefined || b.eligible !== undefined,
    'give drain (true or false) or eligible (true or false)',
  )
  .refine(
    (b) => b.deadline_ms === undefined || b.drain === true,
    'deadline_ms goes with drain: true (a deadline for the drain it starts)',
  );

/** A one-off's name as `ps` lists it (`run.4821`, `release.1234`): what `ps:stop` takes. */
export const ONE_OFF_NAME = /^(run|release)\.[0-9]{1,6}$/;
