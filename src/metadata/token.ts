// IMDSv2 session tokens, stateless: base64url(expiry || HMAC-SHA256(key, address || expiry)).
// Nothing needs to be stored per token (verified ones are remembered in a bounded map only to
// save work), so a flood of PUTs cannot grow memory; a token only verifies for the address it was
// issued to and until its expiry; the key lives only in this process, so a
// restart invalidates every token and clients simply PUT again (cloud-init does so on a 401).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
export const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
export const MAX_TTL = 21600;

const MAC_BYTES = 32;
const TOKEN_BYTES = 8 + MAC_BYTES;
/** Base64url length of a token; anything else is refused before decoding. */
export const TOKEN_LENGTH = Math.ceil((TOKEN_BYTES * 4) / 3);

export type TokenCheck = 'valid' | 'expired' | 'invalid';

/**
 * Tokens already verified, so that a VM's forty-odd requests per boot cost one HMAC rather than
 * forty (the HMAC was a tenth of the server's time in the boot storm of `npm run bench`). Only
 * tokens whose MAC checked out are kept, keyed by the token and bound to its address, and the map
 * starts over when full: memory stays bounded whatever clients send, and losing an entry costs
 * only a recomputation.
 */
const MAX_VERIFIED = 4096;

export class TokenIssuer {
  private readonly key: Buffer;
  private readonly verified = new Map<string, { address: string; expiresAt: number }>();

  constructor(key: Buffer = randomBytes(32), private readonly now: () => number = Date.now) {
    this.key = key;
  }

  /** Parses the TTL header: an integer 1..21600 (as EC2), else null. */
  static parseTtl(header: string | undefined): number | null {
    if (header === undefined || !/^\d{1,5}$/.test(header.trim())) return null;
    const n = Number(header.trim());
    return n >= 1 && n <= MAX_TTL ? n : null;
  }

  private mac(address: string, expiry: Buffer): Buffer {
    return createHmac('sha256', this.key).update(address).update('\0').update(expiry).digest();
  }

  issue(address: string, ttlSeconds: number): string {
    const expiry = Buffer.alloc(8);
    expiry.writeBigUInt64BE(BigInt(this.now() + ttlSeconds * 1000));
    return Buffer.concat([expiry, this.mac(address, expiry)]).toString('base64url');
  }

  check(token: string, address: string): TokenCheck {
    const known = this.verified.get(token);
    if (known !== undefined && known.address === address) return known.expiresAt > this.now() ? 'valid' : 'expired';
    if (token.length !== TOKEN_LENGTH || !/^[A-Za-z0-9_-]+$/.test(token)) return 'invalid';
    const raw = Buffer.from(token, 'base64url');
    if (raw.length !== TOKEN_BYTES) return 'invalid';
    const expiry = raw.subarray(0, 8);
    if (!timingSafeEqual(raw.subarray(8), this.mac(address, expiry))) return 'invalid';
    const expiresAt = Number(expiry.readBigUInt64BE());
    if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
    this.verified.set(token, { address, expiresAt });
    return expiresAt > this.now() ? 'valid' : 'expired';
  }
}
