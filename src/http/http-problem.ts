/** An error that already knows its HTTP answer. */
export class HttpProblem extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    detail: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
    this.name = 'HttpProblem';
  }
}
