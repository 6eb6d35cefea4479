/**
 * The Runs panel (left sidebar): newest first, filters by job and status, ET and UTC times; a run in
 * flight shows its current step and the panel polls until it ends. Clicking a run opens its report.
 */

import { api, ApiError, IRun } from './api';
import { badge, button, duration, etTime, h, progressText, utcTime } from './dom';
import { PollingPanel } from './polling';

const STATUSES = [
  'running',
  'success',
  'failed',
  'timeout',
  'crashed',
  'waiting',
  'skipped',
  'refused',
  'interrupted',
  'missed'
];
const PAGE = 50;
const FAST_MS = 2000; // while a run is in flight
const SLOW_MS = 15000;

export class RunsPanel extends PollingPanel {
  private readonly jobSelect: HTMLSelectElement;
  private readonly statusSelect: HTMLSelectElement;
  private readonly list: HTMLUListElement;
  private readonly footer: HTMLDivElement;
  private readonly message: HTMLDivElement;
  private runs: IRun[] = [];
  private total = 0;
  private limit = PAGE;

  constructor(private readonly open: (run: IRun) => void) {
    super(FAST_MS, SLOW_MS, true);
    this.id = 'shiol-runs';
    this.addClass('shiol-Panel');
    this.addClass('shiol-RunsPanel');
    this.jobSelect = h('select', { class: 'shiol-Filter', 'aria-label': 'Filter by job', name: 'job' });
    this.jobSelect.append(h('option', { value: '' }, 'all jobs'));
    this.statusSelect = h('select', { class: 'shiol-Filter', 'aria-label': 'Filter by status', name: 'status' });
    this.statusSelect.append(h('option', { value: '' }, 'any status'));
    for (const status of STATUSES) {
      this.statusSelect.append(h('option', { value: status }, status));
    }
    for (const select of [this.jobSelect, this.statusSelect]) {
      select.addEventListener('change', () => {
        this.limit = PAGE;
        void this.refresh();
      });
    }
    this.list = h('ul', { class: 'shiol-List', role: 'list' });
    this.message = h('div', { class: 'shiol-Message' });
    this.footer = h('div', { class: 'shiol-Footer' });
    this.node.append(
      h('div', { class: 'shiol-Header' }, h('h2', {}, 'Runs'), button('Refresh', () => this.refresh(), 'shiol-Refresh')),
      h('div', { class: 'shiol-Filters' }, this.jobSelect, this.statusSelect),
      this.message,
      this.list,
      this.footer
    );
  }

  protected inFlight(): boolean {
    return this.runs.some(run => run.status === 'running');
  }

  protected async load(): Promise<void> {
    try {
      const [page, jobs] = await Promise.all([
        api.runs({ job: this.jobSelect.value, status: this.statusSelect.value, limit: this.limit }),
        api.jobs().catch(() => null)
      ]);
      if (jobs) {
        this.fillJobs(jobs.jobs.map(job => job.name));
      }
      this.runs = page.runs;
      this.total = page.total;
      this.message.textContent = '';
      this.message.classList.remove('shiol-Error');
      this.render();
    } catch (err) {
      this.message.textContent = err instanceof ApiError ? err.message : String(err);
      this.message.classList.add('shiol-Error');
    }
  }

  private fillJobs(names: string[]): void {
    const current = this.jobSelect.value;
    const known = new Set(Array.from(this.jobSelect.options, o => o.value));
    for (const name of names) {
      if (!known.has(name)) {
        this.jobSelect.append(h('option', { value: name }, name));
      }
    }
    this.jobSelect.value = current;
  }

  private render(): void {
    if (this.runs.length === 0) {
      this.list.replaceChildren(h('li', { class: 'shiol-Empty' }, 'No runs match.'));
    } else {
      this.list.replaceChildren(...this.runs.map(run => this.row(run)));
    }
    const more =
      this.runs.length < this.total
        ? button('Show more', () => {
            this.limit = Math.min(this.limit + PAGE, 200);
            return this.refresh();
          })
        : null;
    this.footer.replaceChildren(h('span', {}, `${this.runs.length} of ${this.total} runs`), more ?? '');
  }

  private row(run: IRun): HTMLLIElement {
    const progress =
      run.status === 'running'
        ? h(
            'div',
            { class: 'shiol-Progress' },
            progressText(run)
          )
        : null;
    const error = run.error ? h('div', { class: 'shiol-RunError', title: run.error }, run.error) : null;
    const item = h(
      'li',
      {
        class: 'shiol-Run',
        tabindex: '0',
        'data-run-id': run.run_id,
        'data-status': run.status,
        title: `Open the report of ${run.run_id}`
      },
      h(
        'div',
        { class: 'shiol-RunLine' },
        badge(run.status),
        h('span', { class: 'shiol-RunJob' }, run.job),
        h('span', { class: 'shiol-RunDuration' }, duration(run.duration_s))
      ),
      h(
        'div',
        { class: 'shiol-Time' },
        `${etTime(run.started_at)} · ${run.trigger}`,
        h('span', { class: 'shiol-Utc' }, utcTime(run.started_at))
      ),
      progress,
      error
    );
    item.addEventListener('click', () => this.open(run));
    item.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        this.open(run);
      }
    });
    return item;
  }
}
