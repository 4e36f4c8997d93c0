import { HttpProblem } from '../http/problem.js';
import type { Mirror, SourceStatus, SyncReport } from '../mirror/sync.js';
import type { Handler, Schemas } from './types.js';

/** The contract's shape of a source's status (never its credentials). */
function describe(status: SourceStatus): Schemas['SourceStatus'] {
  return { name: status.name, catalogs: status.catalogs, running: status.running, set_aside_until: status.setAsideUntil, last: status.last && report(status.last) };
}

function report(r: SyncReport): Schemas['SyncReport'] {
  return { started_at: r.startedAt, finished_at: r.finishedAt, total: r.total, done: r.done, stored: r.stored, unchanged: r.unchanged, bytes: r.bytes, refused: r.refused, error: r.error };
}

export function sourceHandlers({ mirror }: { mirror: Mirror }) {
  const listSources: Handler<'listSources'> = (_req, res) => {
    res.json(mirror.names().map((name) => describe(mirror.status(name))));
  };

  const getSource: Handler<'getSource'> = (req, res) => {
    res.json(describe(mirror.status(req.params.name)));
  };

  const syncSource: Handler<'syncSource'> = (req, res) => {
    const { started, done } = mirror.start(req.params.name);
    if (!started) throw new HttpProblem(409, 'conflict', `a sync of ${req.params.name} is running; follow it at GET /sources/${req.params.name}`);
    // The run reports its own failures; nobody awaits it here.
    done.catch(() => undefined);
    res.locals.audit = { package: `source ${req.params.name}` };
    res.status(202).json(describe(mirror.status(req.params.name)));
  };

  return { listSources, getSource, syncSource };
}
