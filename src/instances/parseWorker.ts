// The worker side of domainParser.ts: parses domain XML documents off the main thread, one at a
// time, and posts back the facts or the refusal. It holds no state between documents.

import { parentPort } from 'node:worker_threads';
import { describe, isMdsError } from '../errors.js';
import { parseDomainXml, type DomainInfo, type InterfaceMatch } from '../libvirt/domain.js';

export interface ParseJob {
  readonly id: number;
  readonly xml: string;
  readonly match: InterfaceMatch;
}

export type ParseReply =
  | { readonly id: number; readonly ok: true; readonly info: DomainInfo }
  | { readonly id: number; readonly ok: false; readonly code: string | null; readonly message: string };

const port = parentPort;
if (port) {
  port.on('message', (job: ParseJob) => {
    let reply: ParseReply;
    try {
      reply = { id: job.id, ok: true, info: parseDomainXml(job.xml, job.match) };
    } catch (e) {
      // Only the code and the message cross the thread boundary; the main thread rebuilds the
      // MdsError from them, so a refusal reads the same whichever thread parsed the document.
      reply = { id: job.id, ok: false, code: isMdsError(e) ? e.code : null, message: describe(e) };
    }
    port.postMessage(reply);
  });
}
