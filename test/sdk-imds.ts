// Runs inside a VM namespace: the AWS SDK for JavaScript v3 metadata client reads the given paths
// from 169.254.169.254 with IMDSv1 disabled, so every read must go through its token flow. Prints
// `{ token, values }` as JSON, or `{ error }` with exit status 1.

import { MetadataService } from '@aws-sdk/ec2-metadata-service';

async function main(paths: string[]): Promise<void> {
  const imds = new MetadataService({
    endpoint: 'http://169.254.169.254',
    ec2MetadataV1Disabled: true,
    retries: 0,
    httpOptions: { timeout: 5000 },
  });
  const token = await imds.fetchMetadataToken();
  const values: Record<string, string> = {};
  for (const p of paths) values[p] = await imds.request(p, {});
  process.stdout.write(JSON.stringify({ token, values }));
}

main(process.argv.slice(2)).catch((e: unknown) => {
  process.stdout.write(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
  process.exitCode = 1;
});
