// A minimal HTTP/1.1 client connection bound to one source address. The load generator shares
// two cores with the server under test, so it must cost far less per request than the server:
// requests are written as prebuilt text and replies are parsed only as far as the status line,
// Content-Length and the body (every server measured here sends Content-Length).

import net from 'node:net';

export interface Reply {
  status: number;
  body: Buffer;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

export class Connection {
  private readonly socket: net.Socket;
  readonly ready: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private waiting: { resolve: (r: Reply) => void; reject: (e: Error) => void } | null = null;
  private failure: Error | null = null;

  constructor(port: number, localAddress: string, host = '127.0.0.1') {
    this.socket = net.connect({ host, port, localAddress });
    this.socket.setNoDelay(true);
    // A reply that never comes is an error to count, not a hang of the whole benchmark.
    this.socket.setTimeout(10_000, () => {
      this.fail(new Error('no reply within 10 s'));
      this.socket.destroy();
    });
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    // A rejection nobody awaits yet must not crash the process; request() reports it.
    this.ready.catch(() => undefined);
    this.socket.on('data', (chunk: Buffer) => {
      this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
      this.parse();
    });
    this.socket.on('error', (e) => this.fail(e));
    this.socket.on('close', () => this.fail(new Error('connection closed by the server')));
  }

  private fail(e: Error): void {
    this.failure ??= e;
    const w = this.waiting;
    this.waiting = null;
    w?.reject(e);
  }

  private parse(): void {
    if (!this.waiting) return;
    const end = this.buf.indexOf(CRLFCRLF);
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const status = Number(head.slice(9, 12));
    const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    if (!m) {
      this.fail(new Error(`reply without Content-Length: ${head.split('\r\n')[0] ?? ''}`));
      this.socket.destroy();
      return;
    }
    const total = end + 4 + Number(m[1]);
    if (this.buf.length < total) return;
    const body = this.buf.subarray(end + 4, total);
    this.buf = this.buf.length === total ? Buffer.alloc(0) : this.buf.subarray(total);
    const w = this.waiting;
    this.waiting = null;
    w.resolve({ status, body });
  }

  /** Sends one request (a complete request head, optionally followed by `body`) and awaits the reply. */
  async send(head: string, body?: Buffer): Promise<Reply> {
    await this.ready;
    if (this.failure) throw this.failure;
    return new Promise<Reply>((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : head);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A request head; `headers` are written as given. */
export function requestHead(method: string, path: string, headers: Record<string, string> = {}, bodyLength?: number): string {
  let h = `${method} ${path} HTTP/1.1\r\nHost: 169.254.169.254\r\nUser-Agent: mdserver-bench\r\n`;
  for (const [k, v] of Object.entries(headers)) h += `${k}: ${v}\r\n`;
  if (bodyLength !== undefined) h += `Content-Length: ${bodyLength}\r\n`;
  return h + '\r\n';
}
