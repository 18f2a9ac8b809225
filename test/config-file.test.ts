/**
 * The config file's values (src/cli/config-file.ts): what [defaults] gives each service, what the
 * flags' own checks make of each value, and when two versions of a service count as the same.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { readConfig } from '../src/cli/config-file.js';
import { CONFIG_RULES } from '../src/cli/serve-config.js';
import { scratchFolder } from './helpers/cli.js';

async function configOf(t: { after(fn: () => void): void }, text: string) {
  const file = join(scratchFolder(t), 'lab.toml');
  writeFileSync(file, text);
  return readConfig(file, CONFIG_RULES);
}

test('[defaults] fills every service, a table overrides it, and each value goes through its flag\'s check', async (t) => {
  const config = await configOf(t, '[defaults]\nmax-connections = 8\nshutdown-timeout = 2\nrate = "20/s"\n\n[echo]\nport = 10007\n\n[daytime]\nport = 10013\nmax-connections = 3\nclose = false\n');
  const [echo, daytime] = config.services;
  assert.deepEqual([echo?.values.maxConnections, daytime?.values.maxConnections], [8, 3]);
  // rateOption reads "20/s" as 20; secondsOption turns seconds into milliseconds, as on the command line.
  assert.equal(echo?.values.rate, 20);
  assert.equal(config.process.shutdownTimeout, 2000);
  // false is --no-close; an option nobody set has its flag's default (daytime's utc: false).
  assert.equal(daytime?.values.close, 'never');
  assert.equal(daytime?.values.utc, false);
  assert.equal(echo?.values.close, undefined, 'echo has no close switches');
});

test('a service is the same after a reload when its values are, whatever the order of its keys', async (t) => {
  const before = await configOf(t, '[echo]\nport = 10007\nudp = true\n[daytime]\nport = 10013\n');
  const after = await configOf(t, '[daytime]\nport = 10013\nutc = false\n[echo]\nudp = true\nport = 10007\n');
  const fingerprints = (config: typeof before) => Object.fromEntries(config.services.map((s) => [s.protocol.name, s.fingerprint]));
  assert.deepEqual(fingerprints(after), fingerprints(before), 'utc = false is the default: daytime is unchanged');
  const changed = await configOf(t, '[echo]\nport = 10007\nudp = true\n[daytime]\nport = 10013\nutc = true\n');
  assert.notEqual(fingerprints(changed).daytime, fingerprints(before).daytime);
  assert.equal(fingerprints(changed).echo, fingerprints(before).echo);
});
