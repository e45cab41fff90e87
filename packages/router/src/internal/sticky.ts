import { createHmac, timingSafeEqual } from 'node:crypto';

/** The cookie that names a sticky session's backend. */
export const STICKY_COOKIE = 'flotilla_sticky';

/** Signs and checks sticky-session cookies with HMAC-SHA256. */
export class StickyCookies {
  readonly #secret: Buffer;

  constructor(secret: string | Buffer) {
    this.#secret = typeof secret === 'string' ? Buffer.from(secret) : secret;
  }

  #mac(service: string, id: string): string {
    return createHmac('sha256', this.#secret)
      .update(`${service}\0${id}`)
      .digest('base64url')
      .slice(0, 27);
  }

  /** The cookie value for backend `id` of `service`. */
  sign(service: string, id: string): string {
    return `${id}.${this.#mac(service, id)}`;
  }

  /** The backend id a Cookie header names for `service`, if its signature holds. */
  verify(service: string, cookieHeader: string): string | undefined {
    let i = cookieHeader.indexOf(STICKY_COOKIE + '=');
    while (i !== -1) {
      if (i === 0 || cookieHeader[i - 1] === ' ' || cookieHeader[i - 1] === ';') break;
      i = cookieHeader.indexOf(STICKY_COOKIE + '=', i + 1);
    }
    if (i === -1) return undefined;
    const start = i + STICKY_COOKIE.length + 1;
    let end = cookieHeader.indexOf(';', start);
    if (end === -1) end = cookieHeader.length;
    const value = cookieHeader.slice(start, end).trim();
    const dot = value.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const id = value.slice(0, dot);
    const mac = Buffer.from(value.slice(dot + 1));
    const want = Buffer.from(this.#mac(service, id));
    if (mac.length !== want.length || !timingSafeEqual(mac, want)) return undefined;
    return id;
  }
}
