const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `5017` → `4.9 KiB`: what a person reads; the exact bytes go in a title beside it. */
export function humanSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 1 : 0)} ${UNITS[unit]}`;
}

/** `3 templates`, `1 template`, `1,234 downloads`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en')} ${n === 1 ? one : many}`;
}
