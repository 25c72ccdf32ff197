// Response helpers: IMDS answers are text/plain with no trailing newline.

import type { Response } from 'express';

export function sendText(res: Response, body: string, status = 200): void {
  res.status(status).type('text/plain; charset=utf-8').send(body);
}
