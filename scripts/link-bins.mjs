// Runs after the build (npm's prepare step). npm links the bins of dependencies into
// node_modules/.bin, but not this package's own; without them, `npx lab-server` would
// reinstall and rebuild the package in npx's cache before running it. Link them here.
import { chmodSync, mkdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { join, relative } from 'node:path';

const { bin } = JSON.parse(readFileSync('package.json', 'utf8'));
mkdirSync(join('node_modules', '.bin'), { recursive: true });
for (const [name, target] of Object.entries(bin)) {
  const link = join('node_modules', '.bin', name);
  rmSync(link, { force: true });
  symlinkSync(relative(join('node_modules', '.bin'), target), link);
  chmodSync(target, 0o755);
}
