import type { ProcessSpec } from '@flotilla/cluster';
import { IMAGE_HOST_TAG } from '@flotilla/host';

/**
 * The constraints of a process type of a release whose artifact is `artifact`: the given ones
 * (an operator's, on the formation before) without the image tag, plus
 * `flotilla.artifact.image: 'true'` for an image, which only hosts whose driver runs images
 * carry (the host agent sets it): a slug runs on every driver, an image only there. Undefined
 * when none is left.
 */
export function artifactConstraints(
  artifact: 'slug' | 'image',
  given: ProcessSpec['constraints'],
): ProcessSpec['constraints'] {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(given ?? {})) if (k !== IMAGE_HOST_TAG) out[k] = v;
  if (artifact === 'image') out[IMAGE_HOST_TAG] = 'true';
  return Object.keys(out).length === 0 ? undefined : out;
}

/** `spec` with the constraints of `artifact` (see {@link artifactConstraints}). */
export function placeFor(artifact: 'slug' | 'image', spec: ProcessSpec): ProcessSpec {
  const { constraints, ...rest } = spec;
  const next = artifactConstraints(artifact, constraints);
  return next === undefined ? rest : { ...rest, constraints: next };
}
