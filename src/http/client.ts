// Who is asking: the TCP source address, never a header (X-Forwarded-For and Host are ignored).

import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/index.js';
import { inNet, isLoopback, normaliseRemote, parseIPv4 } from '../net/ip.js';

export function clientAddress(req: IncomingMessage): string {
  return normaliseRemote(req.socket.remoteAddress);
}

/**
 * The host itself: loopback or the metadata listen address, but never an address inside the VM
 * network (where VMs live, even when that network is a loopback range in a test setup).
 */
export function isHost(addr: string, cfg: Config): boolean {
  const n = parseIPv4(addr);
  if (n !== null && inNet(cfg.dnsmasq.net, n)) return false;
  return isLoopback(addr) || addr === cfg.mdserver.listenAddress;
}
