// Pure IPv4/IPv6 helpers: parsing, network arithmetic and the address forms a socket reports.

import net from 'node:net';

export function parseIPv4(s: string): number | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const part = m[i] as string;
    if (part.length > 1 && part.startsWith('0')) return null;
    const o = Number(part);
    if (o > 255) return null;
    n = n * 256 + o;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

export interface Net4 {
  readonly network: number;
  readonly prefix: number;
  readonly size: number;
}

export function net4(network: number, prefix: number): Net4 {
  return { network, prefix, size: 2 ** (32 - prefix) };
}

export function netmask(prefix: number): string {
  return formatIPv4(prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0);
}

export function inNet(n: Net4, addr: number): boolean {
  return addr >= n.network && addr < n.network + n.size;
}

export function broadcast(n: Net4): number {
  return n.network + n.size - 1;
}

/** True when `addr` has no host bits set for `prefix`. */
export function isNetworkAddress(addr: number, prefix: number): boolean {
  return prefix === 32 || addr % 2 ** (32 - prefix) === 0;
}

/** The IPv4 form of a socket address: `::ffff:10.0.0.1` becomes `10.0.0.1`. */
export function normaliseRemote(addr: string | undefined): string {
  if (!addr) return '';
  if (addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7))) return addr.slice(7);
  return addr;
}

export function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1';
}

export function isIP(s: string): boolean {
  return net.isIP(s) !== 0;
}
