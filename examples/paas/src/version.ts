/** Version of the Flotilla reference PaaS. */
export const VERSION = '0.1.0';
