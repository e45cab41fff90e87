/** A domain an app answers on: a router route to its `web` process type. */
export interface Domain {
  /** The host name, lower case (`demo.example.com`, `*.demo.example.com`). */
  readonly hostname: string;
  readonly app: string;
  /** `default` for `<app>.<base domain>`, made with the app; `custom` for added ones. */
  readonly kind: 'default' | 'custom';
  /** The id of its route in the route table. */
  readonly routeId: string | undefined;
  readonly createdAt: number;
}
