import { Widget } from '@lumino/widgets';

/**
 * A sidebar panel that reloads itself: every `fastMs` while something it shows is in flight, every
 * `slowMs` otherwise, one load at a time. A hidden panel waits for its next showing, unless
 * `pollHidden` and something is in flight (a run's end must reach the list).
 */
export abstract class PollingPanel extends Widget {
  private timer: number | undefined;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly fastMs: number,
    private readonly slowMs: number,
    private readonly pollHidden: boolean
  ) {
    super();
  }

  /** Load now (or join the load under way); the next poll is planned from the result. */
  refresh(): Promise<void> {
    if (!this.loading) {
      this.loading = this.load().finally(() => {
        this.loading = null;
        this.schedule();
      });
    }
    return this.loading;
  }

  protected onAfterShow(): void {
    void this.refresh();
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  /** Fetch and render what the panel shows. */
  protected abstract load(): Promise<void>;

  /** Whether something shown is in flight (then the panel polls fast). */
  protected abstract inFlight(): boolean;

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (this.isDisposed) {
      return;
    }
    const busy = this.inFlight();
    this.timer = window.setTimeout(
      () => {
        if (this.isVisible || (busy && this.pollHidden)) {
          void this.refresh();
        } else {
          this.schedule();
        }
      },
      busy ? this.fastMs : this.slowMs
    );
  }
}
