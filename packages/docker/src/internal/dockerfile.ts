/** A FROM or `--from=` of a Dockerfile that names an image (not a stage, not `scratch`). */
export interface ImageReference {
  readonly image: string;
  readonly line: number;
}

/** What {@link dockerfileImages} found. */
export interface DockerfileImages {
  /** The images the build needs, each once, in order of first use. */
  readonly images: readonly ImageReference[];
  /** How many `FROM` instructions there are. */
  readonly stages: number;
}

/** Joins continued lines (`\` at the end), keeping the number of each instruction's first line. */
function instructions(text: string): { line: number; text: string }[] {
  const out: { line: number; text: string }[] = [];
  let current: { line: number; text: string } | undefined;
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  lines.forEach((raw, i) => {
    const trimmed = raw.trim();
    if (current === undefined && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (current !== undefined && trimmed.startsWith('#')) return; // comments inside continuations
    const continued = /\\\s*$/.test(raw);
    const piece = continued ? raw.replace(/\\\s*$/, '') : raw;
    if (current === undefined) current = { line: i + 1, text: piece.trim() };
    else current.text += ` ${piece.trim()}`;
    if (!continued) {
      out.push(current);
      current = undefined;
    }
  });
  if (current !== undefined) out.push(current);
  return out;
}

/** `${NAME}`, `$NAME` and `${NAME:-default}` from `args`. */
function substitute(s: string, args: ReadonlyMap<string, string>): string {
  return s.replace(
    /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (_m, a, def, b) => {
      const name = (a ?? b) as string;
      const v = args.get(name);
      return v !== undefined && v !== '' ? v : ((def as string | undefined) ?? '');
    },
  );
}

/**
 * The images a Dockerfile builds from: each `FROM` that is not an earlier stage's name nor
 * `scratch`, and each `COPY --from=` / `RUN --mount=from=` naming an image. Global `ARG`s
 * (before the first `FROM`) and `buildArgs` are substituted, as Docker does.
 */
export function dockerfileImages(
  text: string,
  buildArgs: Readonly<Record<string, string>>,
): DockerfileImages {
  const args = new Map<string, string>();
  const stageNames = new Set<string>();
  const images: ImageReference[] = [];
  const seen = new Set<string>();
  let stages = 0;
  const add = (image: string, line: number): void => {
    const lower = image.toLowerCase();
    if (lower === 'scratch' || stageNames.has(lower) || /^\d+$/.test(image)) return;
    if (seen.has(image)) return;
    seen.add(image);
    images.push({ image, line });
  };
  for (const ins of instructions(text)) {
    const m = /^([A-Za-z]+)\s+(.*)$/.exec(ins.text);
    if (m === null) continue;
    const keyword = (m[1] as string).toUpperCase();
    const rest = m[2] as string;
    if (keyword === 'ARG' && stages === 0) {
      const am = /^([A-Za-z_][A-Za-z0-9_]*)(?:=(.*))?$/.exec(rest.trim());
      if (am !== null) {
        const name = am[1] as string;
        const def = (am[2] ?? '').replace(/^"(.*)"$/, '$1');
        args.set(name, buildArgs[name] ?? def);
      }
    } else if (keyword === 'FROM') {
      stages++;
      const words = rest
        .trim()
        .split(/\s+/)
        .filter((w) => !w.startsWith('--'));
      const image = substitute(words[0] ?? '', args);
      if (image !== '') add(image, ins.line);
      if ((words[1] ?? '').toUpperCase() === 'AS' && words[2] !== undefined) {
        stageNames.add(words[2].toLowerCase());
      }
    } else if (keyword === 'COPY' || keyword === 'ADD' || keyword === 'RUN') {
      for (const fm of rest.matchAll(/--(?:from=|mount=[^\s]*\bfrom=)([^\s,]+)/g)) {
        add(substitute(fm[1] as string, args), ins.line);
      }
    }
  }
  return { images, stages };
}
