/** How many SQL jobs each principal may have queued or running at once, over every pool. */
export class InFlightLimit {
  private readonly counts = new Map<string, number>();

  constructor(readonly max: number) {}

  /** Counts one more job for the principal; false (nothing counted) when it already has `max`. */
  tryAcquire(principal: string): boolean {
    const count = this.counts.get(principal) ?? 0;
    if (count >= this.max) return false;
    this.counts.set(principal, count + 1);
    return true;
  }

  release(principal: string): void {
    const count = (this.counts.get(principal) ?? 0) - 1;
    if (count > 0) this.counts.set(principal, count);
    else this.counts.delete(principal);
  }

  inFlight(principal: string): number {
    return this.counts.get(principal) ?? 0;
  }
}
