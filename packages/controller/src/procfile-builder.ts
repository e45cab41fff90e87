import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseProcfile } from '@flotilla/procfile';
import { packSlug } from '@flotilla/slug';
import type { Builder, BuilderInput, BuilderResult } from './builder.js';
import { ControllerError, ControllerErrorCodes } from './errors.js';

/** Options of {@link ProcfileBuilder}. */
export interface ProcfileBuilderOptions {
  /** Where slugs are written before the controller stores them (default: the `slugPath` the controller gives, else the source's parent). */
  readonly outDir?: string;
}

/**
 * A {@link Builder} for apps that need no compile step (a Node app with its `node_modules`, a
 * script): the source tree becomes the slug as it is, `.git` left out, and its `Procfile`
 * gives the process types (a source without one is refused). Used in tests and by platforms
 * that build elsewhere.
 *
 * @example
 * ```ts
 * const controller = new Controller({ store, artifacts, workDir, builder: new ProcfileBuilder() });
 * ```
 */
export class ProcfileBuilder implements Builder {
  readonly #outDir: string | undefined;

  constructor(options: ProcfileBuilderOptions = {}) {
    this.#outDir = options.outDir;
  }

  async build(input: BuilderInput): Promise<BuilderResult> {
    const started = Date.now();
    const text = await readFile(join(input.source, 'Procfile'), 'utf8').catch(
      (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT')
          throw new ControllerError(
            ControllerErrorCodes.BUILD_FAILED,
            'the source has no Procfile: add one naming its process types (web: node server.js)',
            { path: 'Procfile' },
          );
        throw err;
      },
    );
    const procfile = parseProcfile(text, { strict: true });
    const processTypes: Record<string, string> = {};
    for (const entry of procfile.entries) processTypes[entry.name] = entry.command;
    input.onOutput(
      `-----> Procfile declares types -> ${Object.keys(processTypes).join(', ') || '(none)'}\n`,
    );
    const dest =
      this.#outDir === undefined && input.slugPath !== undefined
        ? input.slugPath
        : join(
            this.#outDir ?? join(input.source, '..'),
            `slug-${started}-${Math.random().toString(16).slice(2, 10)}.tgz`,
          );
    const packed = await packSlug(input.source, dest, {
      exclude: ['.git'],
      ...(input.signal === undefined ? {} : { signal: input.signal }),
    });
    input.onOutput(`-----> Compressing... done, ${(packed.size / 1024).toFixed(1)} KiB\n`);
    return {
      slug: packed.path,
      sha256: packed.sha256,
      sizeBytes: packed.size,
      processTypes,
      buildpacks: [],
      durationMs: Date.now() - started,
    };
  }
}
