// Pure: whether a request asked for JSON. Only a client that prefers application/json over plain
// text gets it; every metadata client seen sends no Accept header or `*/*` (cloud-init through
// requests, curl in ec2-metadata, the AWS SDKs) and must keep getting the IMDS text.

/**
 * True when `accept` gives application/json a higher quality than text/plain, `text/*` and
 * `*\/*`. A tie keeps text: axios sends `application/json, text/plain, *\/*` to every server and
 * expects the answer as the server usually gives it.
 */
export function wantsJson(accept: string | undefined): boolean {
  if (accept === undefined || !/json/i.test(accept)) return false;
  let json = 0;
  let text = 0;
  for (const range of accept.split(',', 64)) {
    const [type = '', ...params] = range.split(';');
    const t = type.trim().toLowerCase();
    let q = 1;
    for (const p of params) {
      const [name = '', value = ''] = p.split('=');
      // A quality that is not a number counts as 0: a malformed preference never turns JSON on.
      if (name.trim().toLowerCase() === 'q') q = /^\s*[0-9.]{1,5}\s*$/.test(value) ? Number(value) : 0;
    }
    if (!(q >= 0 && q <= 1)) q = 0;
    if (t === 'application/json') json = Math.max(json, q);
    else if (t === 'text/plain' || t === 'text/*' || t === '*/*') text = Math.max(text, q);
  }
  return json > text;
}
