import type { ImageBuilder, ImageRemover } from '../builder.js';

/** Whether an {@link ImageBuilder} is also an {@link ImageRemover}. */
export function canRemoveImages(
  builder: ImageBuilder | undefined,
): builder is ImageBuilder & ImageRemover {
  return typeof (builder as Partial<ImageRemover> | undefined)?.removeImage === 'function';
}

/** Whether an {@link ImageBuilder} can remove images and list them. */
export function canCollectImages(
  builder: ImageBuilder | undefined,
): builder is ImageBuilder & ImageRemover & Required<Pick<ImageRemover, 'listImages'>> {
  return canRemoveImages(builder) && typeof builder.listImages === 'function';
}

/** What the tags of `app`'s Dockerfile build images start with: `flotilla/<app>:`. */
export function buildImagePrefix(app: string): string {
  return `flotilla/${app}:`;
}

/** The tag of the image of Dockerfile build `build` of `app` (matches {@link BUILD_IMAGE}). */
export function buildImageTag(app: string, build: string): string {
  return `${buildImagePrefix(app)}${build}`;
}

/** The tag the controller gives the image of a Dockerfile build: `flotilla/<app>:<build id>`. */
export const BUILD_IMAGE = /^flotilla\/([a-z][a-z0-9-]{0,62}):(b-[0-9a-f]{12})$/;
