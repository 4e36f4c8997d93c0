import { vetFile, type Verdict } from './vet.js';

/**
 * The vetting pool's task (piscina runs it in a worker thread): vets the staged upload at `path`. Everything it
 * returns is plain data; a refusal is a verdict, not an error. It reads the file itself, so no archive byte and no
 * manifest is parsed on the server's event loop.
 */
export default function vet(task: { path: string }): Promise<Verdict> {
  return vetFile(task.path);
}
