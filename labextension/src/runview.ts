/**
 * One run in a main-area tab: its steps and times, the archived HTML report in a sandboxed iframe
 * (no scripts), and the actions: each step's executed notebook (read-only), Rerun, Diff with the
 * previous run of the same job. A run in flight is polled until it ends.
 */
import { Notification } from '@jupyterlab/apputils';
import { Widget } from '@lumino/widgets';

import { api, apiUrl, ApiError, IRun, IRunDetail, IStep } from './api';
import { badge, button, duration, etTime, h, progressText, utcTime } from './dom';

const POLL_MS = 2000;

export interface IRunActions {
  openNotebook(run: IRunDetail, step: IStep): void;
  openDiff(previous: IRun, run: IRunDetail): void;
  rerunStarted(): void;
}

/** The previous run (older, same job) of ``run``, or null when it is the job's first. */
export async function previousRun(run: IRun): Promise<IRun | null> {
  let offset = 0;
  let found = false;
  for (;;) {
    const page = await api.runs({ job: run.job, limit: 200, offset });
    if (found) {
      return page.runs[0] ?? null;
    }
    const index = page.runs.findIndex(r => r.run_id === run.run_id);
    if (index >= 0 && index + 1 < page.runs.length) {
      return page.runs[index + 1];
    }
    found = index >= 0;
    offset += page.runs.length;
    if (page.runs.length === 0 || offset >= page.total) {
      return null;
    }
  }
}

export class RunView extends Widget {
  private readonly summary: HTMLDivElement;
  private readonly actions: HTMLDivElement;
  private readonly message: HTMLDivElement;
  private readonly frameBox: HTMLDivElement;
  private detail: IRunDetail | null = null;
  private timer: number | undefined;

  constructor(
    readonly runId: string,
    private readonly handlers: IRunActions
  ) {
    super();
    this.addClass('shiol-RunView');
    this.id = `shiol-run-${runId}`;
    this.title.label = `Run ${runId}`;
    this.title.closable = true;
    this.summary = h('div', { class: 'shiol-RunSummary' });
    this.actions = h('div', { class: 'shiol-Actions' });
    this.message = h('div', { class: 'shiol-Message' });
    this.frameBox = h('div', { class: 'shiol-FrameBox' });
    this.node.append(this.summary, this.actions, this.message, this.frameBox);
    void this.load();
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  private async load(): Promise<void> {
    let detail: IRunDetail;
    try {
      detail = await api.run(this.runId);
    } catch (err) {
      this.say(err instanceof ApiError ? err.message : String(err), true);
      return;
    }
    if (this.isDisposed) {
      return;
    }
    const wasRunning = this.detail?.status === 'running';
    const first = this.detail === null;
    this.detail = detail;
    this.title.label = `${detail.job} · ${detail.status}`;
    this.title.caption = `Run ${detail.run_id} of ${detail.job}`;
    this.renderSummary(detail);
    this.renderActions(detail);
    if (first || (wasRunning && detail.status !== 'running')) {
      this.renderReport(detail);
    }
    window.clearTimeout(this.timer);
    if (detail.status === 'running') {
      this.timer = window.setTimeout(() => void this.load(), POLL_MS);
    }
  }

  private say(text: string, error = false): void {
    this.message.textContent = text;
    this.message.classList.toggle('shiol-Error', error);
  }

  private renderSummary(run: IRunDetail): void {
    const steps = h(
      'ol',
      { class: 'shiol-Steps' },
      ...run.steps.map(step =>
        h(
          'li',
          { class: 'shiol-Step', 'data-step': step.name },
          badge(step.status),
          h('span', { class: 'shiol-StepName' }, step.name),
          h('span', { class: 'shiol-RunDuration' }, duration(step.duration_s)),
          step.error ? h('span', { class: 'shiol-RunError', title: step.error }, step.error) : null
        )
      )
    );
    const progress =
      run.status === 'running'
        ? h('div', { class: 'shiol-Progress' }, `running ${progressText(run)}`)
        : null;
    this.summary.replaceChildren(
      h(
        'div',
        { class: 'shiol-RunLine' },
        badge(run.status),
        h('strong', {}, run.job),
        h('code', { class: 'shiol-RunId' }, run.run_id),
        h('span', { class: 'shiol-RunTrigger' }, run.trigger)
      ),
      h('div', { class: 'shiol-Time' }, `started ${etTime(run.started_at)} · ${utcTime(run.started_at)}`),
      run.finished_at
        ? h(
            'div',
            { class: 'shiol-Time' },
            `ended ${etTime(run.finished_at)} · ${utcTime(run.finished_at)} · took ${duration(run.duration_s)}`
          )
        : '',
      progress ?? '',
      run.error ? h('div', { class: 'shiol-RunError shiol-Wrap' }, `${run.error_class ?? 'error'}: ${run.error}`) : '',
      steps
    );
  }

  private renderActions(run: IRunDetail): void {
    const notebooks = run.steps
      .filter(step => step.notebook)
      .map(step =>
        button(`Notebook: ${step.name}`, () => this.handlers.openNotebook(run, step), 'shiol-OpenNotebook')
      );
    const rerun = button('Rerun', () => this.rerun(run), 'shiol-Rerun');
    rerun.title = run.rerun_command ?? 'Run this job again with the same inputs';
    const diff = button('Diff with previous', () => this.diff(run), 'shiol-Diff');
    this.actions.replaceChildren(rerun, diff, ...notebooks);
  }

  private renderReport(run: IRunDetail): void {
    if (!run.has_report) {
      this.frameBox.replaceChildren(
        h('p', { class: 'shiol-Empty' }, run.status === 'running' ? 'The report is written when the run ends.' : 'This run has no report.')
      );
      return;
    }
    const frame = h('iframe', {
      class: 'shiol-Report',
      title: `Report of ${run.run_id}`,
      sandbox: '', // the server also sends CSP "sandbox": the archived HTML never runs scripts
      referrerpolicy: 'no-referrer',
      src: `${apiUrl(`runs/${encodeURIComponent(run.run_id)}/report`)}?v=${encodeURIComponent(run.status)}`
    });
    this.frameBox.replaceChildren(frame);
  }

  private async rerun(run: IRunDetail): Promise<void> {
    try {
      const started = await api.rerun(run.run_id);
      this.say(`Rerun of ${run.run_id} started (job ${started.job}); it appears in Runs.`);
      Notification.success(`Rerun of ${run.job} started`, { autoClose: 4000 });
      this.handlers.rerunStarted();
    } catch (err) {
      this.say(err instanceof ApiError ? `Rerun refused: ${err.message}` : String(err), true);
    }
  }

  private async diff(run: IRunDetail): Promise<void> {
    try {
      const previous = await previousRun(run);
      if (!previous) {
        this.say(`${run.run_id} is the first run of ${run.job}: there is no previous run to compare.`);
        return;
      }
      this.handlers.openDiff(previous, run);
    } catch (err) {
      this.say(err instanceof ApiError ? err.message : String(err), true);
    }
  }
}
