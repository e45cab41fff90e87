/** Thrown when chunked framing (sizes, extensions, the trailer section) is malformed. */
export class FramingError extends Error {}
