// What a user reads for errors: a component closed under a call (the server shutting down)
// says so, not the library's 'the controller is closed: create a new one'.
import { describe, expect, it } from 'vitest';
import { ControllerError, ControllerErrorCodes, type Deployment } from '@flotilla/controller';
import { errorResponse, userMessage } from './errors.js';

describe('errorResponse', () => {
  it('a closed component is a 503 saying the server is shutting down, and to retry', () => {
    const err = new ControllerError(
      ControllerErrorCodes.CLOSED,
      'the controller is closed: create a new one',
    );
    const { status, body } = errorResponse(err);
    expect(status).toBe(503);
    expect(body.code).toBe('FLOTILLA_CONTROLLER_CLOSED');
    expect(body.message).toMatch(/^the server is shutting down: retry once it is back/);
    expect(userMessage(err)).toBe(body.message);
  });

  it('other errors keep their message; one without a code leaks nothing', () => {
    const err = new ControllerError(ControllerErrorCodes.APP_NOT_FOUND, 'there is no app x');
    expect(userMessage(err)).toBe('there is no app x');
    expect(userMessage(new Error('secret internals'))).toBe('internal error: see the server log');
  });

  it("a failed deploy's body lists its failed dynos with their last lines, as git push shows them", () => {
    const deployment = {
      id: 'd-000000000001',
      app: 'demo',
      release: 'v3',
      from: 'v2',
      kind: 'release',
      status: 'rolled-back',
      createdAt: 0,
      failedJobs: [
        {
          id: 'web.abc.1',
          type: 'web',
          host: 'h1',
          state: 'crashed',
          exitStatus: 2,
          message: 'web.abc.1 exited with code 2',
          logs: Array.from({ length: 25 }, (_, i) => `line ${i + 1}`),
        },
      ],
    } as unknown as Deployment;
    const err = new ControllerError(
      ControllerErrorCodes.DEPLOY_FAILED,
      'the deploy of v3 failed: new web.1 crashed; v2 still serves',
      { deployment },
    );
    const { body } = errorResponse(err);
    expect(body.message).toBe('the deploy of v3 failed: new web.1 crashed; v2 still serves');
    expect(body.details?.[0]).toBe(' !     web (web.abc.1): web.abc.1 exited with code 2');
    // The last 20 lines, in order.
    expect(body.details?.slice(1)).toEqual(
      Array.from({ length: 20 }, (_, i) => `       | line ${i + 6}`),
    );
    expect(
      errorResponse(new ControllerError(ControllerErrorCodes.APP_NOT_FOUND, 'x')).body,
    ).not.toHaveProperty('details');
  });
});
