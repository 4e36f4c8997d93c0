// A stand-in for vetting's worker (src/vetting/worker.ts), for the pool's own tests: the path says what to do.
export default function vet({ path }) {
  if (path === 'spin') for (;;);
  if (path === 'hog') {
    const kept = [];
    for (;;) kept.push(new Array(1_000_000).fill(path));
  }
  if (path === 'throw') throw new Error('a bug in vetting');
  return { accepted: true, kind: "template", catalog: null };
}
