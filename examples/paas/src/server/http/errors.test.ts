// What a user reads for errors: a component closed under a call (the server shutting down)
// says so, not the library's 'the controller is closed: create a new one'.
import { describe, expect, it } from 'vitest';
import { ControllerError, ControllerErrorCodes } from '@flotilla/controller';
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
});
