import { resolve } from 'node:path';
import { recoverIndex } from './storage/recover.js';

/**
 * `node dist/recover-index.js <storage_path>` (or `npm run -s recover-index -- <storage_path>`): the command the
 * server names when it refuses to start on a damaged index. Run it with the server stopped. It never deletes: the
 * damaged generations are moved to index/damaged/, and what it did is printed.
 */
const root = process.argv[2];
if (!root || process.argv.length > 3) {
  console.error('usage: node dist/recover-index.js <storage_path>');
  process.exit(2);
}
try {
  const report = await recoverIndex(resolve(root));
  if (!report) {
    console.log(`the newest index generation in ${resolve(root)} is sound; nothing to recover`);
    process.exit(0);
  }
  if (report.missing) console.log('there was no index generation at all: started an empty index; ids of the lost records are unknown and may be handed out again');
  else console.log(`moved the damaged index generation(s) aside: ${report.damaged.join(', ')}`);
  console.log(report.base ? `started from the last good generation ${report.base}` : 'no good generation was left; started from nothing');
  console.log(`salvaged ${report.salvaged.length} record(s) from the damaged file(s)${report.salvaged.length ? `: ${report.salvaged.join(', ')}` : ''}`);
  console.log(`wrote ${report.written}: ${report.records} package(s); the next id will be above ${report.lastId}`);
  for (const orphan of report.orphans) console.log(`blob ${orphan.file} (SHA-256 ${orphan.sha256}, ${orphan.size} bytes) is named by no record; kept (upload those bytes again to serve them)`);
  console.log('start the server again; check the packages listed against what you expect');
} catch (err) {
  console.error(`recovery failed, nothing was deleted: ${(err as Error).message}`);
  process.exit(1);
}
