/**
 * The Jobs panel (left sidebar): every definition, built-in and the analyst's, with its schedule, next
 * run (ET and UTC), last result and paused state; Pause, Resume and Run now. A refused action shows the
 * server's reason (a paused job, a run already in flight) on the job's card.
 */
import { Notification } from '@jupyterlab/apputils';

import { api, ApiError, IJob } from './api';
import { badge, button, etTime, h, utcTime } from './dom';
import { PollingPanel } from './polling';

const POLL_MS = 10000;
const FAST_MS = 2000;

export class JobsPanel extends PollingPanel {
  private readonly list: HTMLDivElement;
  private readonly message: HTMLDivElement;
  private jobs: IJob[] = [];
  private readonly errors = new Map<string, string>();

  constructor(
    private readonly openRun: (runId: string) => void,
    private readonly started: () => void
  ) {
    super(FAST_MS, POLL_MS, false);
    this.id = 'shiol-jobs';
    this.addClass('shiol-Panel');
    this.addClass('shiol-JobsPanel');
    this.list = h('div', { class: 'shiol-List' });
    this.message = h('div', { class: 'shiol-Message' });
    this.node.append(
      h('div', { class: 'shiol-Header' }, h('h2', {}, 'Jobs'), button('Refresh', () => this.refresh(), 'shiol-Refresh')),
      this.message,
      this.list
    );
  }

  protected inFlight(): boolean {
    return this.jobs.some(job => job.running);
  }

  protected async load(): Promise<void> {
    try {
      this.jobs = (await api.jobs()).jobs;
      this.message.textContent = '';
      this.message.classList.remove('shiol-Error');
      this.render();
    } catch (err) {
      this.message.textContent = err instanceof ApiError ? err.message : String(err);
      this.message.classList.add('shiol-Error');
    }
  }

  private render(): void {
    if (this.jobs.length === 0) {
      this.list.replaceChildren(h('p', { class: 'shiol-Empty' }, 'No jobs are defined.'));
      return;
    }
    this.list.replaceChildren(...this.jobs.map(job => this.card(job)));
  }

  private async act(job: IJob, what: string, action: () => Promise<unknown>, done: string): Promise<void> {
    try {
      await action();
      this.errors.delete(job.name);
      Notification.success(done, { autoClose: 4000 });
    } catch (err) {
      const reason = err instanceof ApiError ? err.message : String(err);
      this.errors.set(job.name, `${what} refused: ${reason}`);
    }
    await this.refresh();
  }

  private card(job: IJob): HTMLDivElement {
    const last = job.last_result;
    const lastNode = last
      ? h('a', { class: 'shiol-LastResult', href: '#', title: `Open run ${last.run_id}` }, badge(last.status), ` ${etTime(last.started_at)}`)
      : h('span', { class: 'shiol-Muted' }, 'never run');
    if (last) {
      lastNode.addEventListener('click', event => {
        event.preventDefault();
        this.openRun(last.run_id);
      });
    }
    const toggle = job.paused
      ? button('Resume', () => this.act(job, 'Resume', () => api.resume(job.name), `${job.name} resumed`), 'shiol-Resume')
      : button('Pause', () => this.act(job, 'Pause', () => api.pause(job.name), `${job.name} paused`), 'shiol-Pause');
    const runNow = button(
      'Run now',
      () =>
        this.act(
          job,
          'Run now',
          async () => {
            await api.runJob(job.name);
            this.started();
          },
          `${job.name} started; follow it in Runs`
        ),
      'shiol-RunNow'
    );
    const error = this.errors.get(job.name);
    return h(
      'div',
      { class: `shiol-Job${job.paused ? ' shiol-Job-paused' : ''}`, 'data-job': job.name },
      h(
        'div',
        { class: 'shiol-RunLine' },
        h('strong', { class: 'shiol-JobName' }, job.name),
        h('span', { class: 'shiol-Tag' }, job.builtin ? 'built-in' : 'analyst'),
        job.paused ? h('span', { class: 'shiol-Tag shiol-Tag-paused' }, 'paused') : null,
        job.running ? badge('running') : null
      ),
      job.description ? h('div', { class: 'shiol-Muted shiol-Wrap' }, job.description) : null,
      h('dl', {},
        h('dt', {}, 'schedule'), h('dd', { class: 'shiol-Schedule' }, job.schedule.text),
        h('dt', {}, 'next run'),
        h('dd', { class: 'shiol-NextRun' }, job.next_run ? etTime(job.next_run) : job.paused ? 'paused' : '-',
          job.next_run_utc ? h('span', { class: 'shiol-Utc' }, utcTime(job.next_run_utc)) : null),
        h('dt', {}, 'last result'), h('dd', {}, lastNode)
      ),
      h('div', { class: 'shiol-Actions' }, runNow, toggle),
      error ? h('div', { class: 'shiol-Message shiol-Error shiol-JobError' }, error) : null
    );
  }
}
