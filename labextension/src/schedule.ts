/**
 * "Schedule…": a dialog that turns a notebook into a job of jobs.toml. It is pre-filled from the
 * notebook's parameters cell; every edit is checked by the server (POST jobs/check, the validation of
 * `shiol jobs check`) and each problem is shown beside its field; Create posts the job (POST jobs).
 */
import { Widget } from '@lumino/widgets';

import { api, ApiError, IJob, IJobAdd, INotebookParameter, IProblem, ScheduleSpec } from './api';
import { h, show } from './dom';

const CHECK_DELAY_MS = 350;
const DEFAULT_TIMEZONE = 'America/New_York';

/** A job name (a slug: lowercase, digits, '-' and '_', starting with a letter) from a notebook path. */
export function slugFor(path: string): string {
  const base = (path.split('/').pop() ?? '').replace(/\.ipynb$/i, '').toLowerCase();
  const slug = base
    .replace(/[^a-z0-9_-]+/g, '-')
    .replace(/^[^a-z]+/, '')
    .replace(/-+/g, '-')
    .replace(/-$/, '')
    .slice(0, 63);
  return slug || 'notebook-job';
}

/** The value typed for a parameter, as its declared type wants it; a string says what is wrong. */
export function parseValue(text: string, type: string | null): { value: unknown } | { problem: string } {
  const trimmed = text.trim();
  switch (type) {
    case 'str':
      return { value: text };
    case 'int':
      return /^[+-]?\d+$/.test(trimmed) ? { value: Number(trimmed) } : { problem: `${show(text)} is not a whole number` };
    case 'float':
      return trimmed !== '' && Number.isFinite(Number(trimmed))
        ? { value: Number(trimmed) }
        : { problem: `${show(text)} is not a number` };
    case 'bool':
      if (/^(true|false)$/i.test(trimmed)) {
        return { value: trimmed.toLowerCase() === 'true' };
      }
      return { problem: `${show(text)} is not true or false` };
    default:
      try {
        return { value: JSON.parse(trimmed) };
      } catch {
        return { value: text };
      }
  }
}

function shown(value: unknown): string {
  if (value === null || value === undefined) {
    return '';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

interface IParamRow {
  param: INotebookParameter;
  input: HTMLInputElement;
}

/** The modal dialog; ``done`` is called with the created job. */
export class ScheduleDialog extends Widget {
  private readonly fields = new Map<string, HTMLDivElement>();
  private readonly general: HTMLDivElement;
  private readonly create: HTMLButtonElement;
  private readonly name: HTMLInputElement;
  private readonly description: HTMLInputElement;
  private readonly cron: HTMLInputElement;
  private readonly timezone: HTMLInputElement;
  private readonly delay: HTMLInputElement;
  private readonly secrets: HTMLInputElement;
  private readonly paramsBox: HTMLDivElement;
  private readonly kinds: Record<string, HTMLInputElement>;
  private params: IParamRow[] = [];
  private timer: number | undefined;
  private checkSeq = 0;

  constructor(
    readonly notebook: string,
    private readonly done: (job: IJob) => void
  ) {
    super();
    this.addClass('jp-Dialog');
    this.addClass('shiol-ScheduleDialog');
    this.name = h('input', { name: 'name', type: 'text', value: slugFor(notebook), spellcheck: 'false' });
    this.description = h('input', { name: 'description', type: 'text', placeholder: 'what this job is for (optional)' });
    this.cron = h('input', { name: 'cron', type: 'text', value: '0 7 * * 1', spellcheck: 'false' });
    this.timezone = h('input', { name: 'timezone', type: 'text', value: DEFAULT_TIMEZONE, spellcheck: 'false' });
    this.delay = h('input', { name: 'after_drawing', type: 'text', value: '30m', spellcheck: 'false' });
    this.secrets = h('input', { name: 'secrets', type: 'text', placeholder: 'e.g. API_KEY OTHER_TOKEN', spellcheck: 'false' });
    const radio = (value: string): HTMLInputElement =>
      h('input', { type: 'radio', name: 'schedule-kind', value });
    this.kinds = { cron: radio('cron'), after_drawing: radio('after_drawing'), manual: radio('manual') };
    this.kinds.cron.checked = true;
    this.paramsBox = h('div', { class: 'shiol-Params' }, h('span', { class: 'shiol-Muted' }, 'reading the parameters cell…'));
    this.general = h('div', { class: 'shiol-Problem', 'data-field': '' });
    this.create = h('button', { class: 'jp-Dialog-button jp-mod-accept jp-mod-styled', type: 'button' }, 'Create');
    const cancel = h('button', { class: 'jp-Dialog-button jp-mod-reject jp-mod-styled', type: 'button' }, 'Cancel');
    cancel.addEventListener('click', () => this.dispose());
    this.create.addEventListener('click', () => void this.submit());

    const schedule = h(
      'fieldset',
      { class: 'shiol-Fieldset' },
      h('legend', {}, 'Schedule'),
      h('label', { class: 'shiol-Choice' }, this.kinds.cron, ' cron ', this.cron, ' in ', this.timezone),
      this.slot('schedule.cron'),
      this.slot('schedule.timezone'),
      h('label', { class: 'shiol-Choice' }, this.kinds.after_drawing, ' after each drawing, once ', this.delay, ' have passed'),
      this.slot('schedule.after_drawing'),
      h('label', { class: 'shiol-Choice' }, this.kinds.manual, ' manual (Run now, `shiol run`)'),
      this.slot('schedule')
    );
    const content = h(
      'div',
      { class: 'jp-Dialog-content shiol-ScheduleContent', role: 'dialog', 'aria-label': 'Schedule a notebook' },
      h('div', { class: 'jp-Dialog-header' }, `Schedule ${notebook}`),
      h(
        'div',
        { class: 'jp-Dialog-body shiol-Form' },
        this.row('Notebook', h('code', {}, notebook), 'notebook'),
        this.row('Name', this.name, 'name'),
        this.row('Description', this.description, 'description'),
        schedule,
        h('fieldset', { class: 'shiol-Fieldset' }, h('legend', {}, 'Parameters'), this.paramsBox, this.slot('parameters')),
        this.row('Secrets', this.secrets, 'secrets', 'environment variable names handed to the run (values never stored)'),
        this.general
      ),
      h('div', { class: 'jp-Dialog-footer' }, cancel, this.create)
    );
    this.node.append(content);
    this.node.addEventListener('input', () => this.changed());
    this.node.addEventListener('change', () => this.changed());
    this.node.addEventListener('keydown', event => {
      if (event.key === 'Escape') {
        this.dispose();
      }
    });
  }

  /** Show the dialog and read the notebook's parameters. */
  launch(): void {
    Widget.attach(this, document.body);
    this.name.focus();
    void this.loadParameters();
  }

  private slot(field: string): HTMLDivElement {
    const node = h('div', { class: 'shiol-Problem', 'data-field': field });
    this.fields.set(field, node);
    return node;
  }

  private row(label: string, control: HTMLElement, field: string, hint = ''): HTMLDivElement {
    return h(
      'div',
      { class: 'shiol-FormRow' },
      h('label', { class: 'shiol-Label' }, label),
      h('div', { class: 'shiol-Control' }, control, hint ? h('div', { class: 'shiol-Muted' }, hint) : null, this.slot(field))
    );
  }

  private async loadParameters(): Promise<void> {
    let params: INotebookParameter[];
    try {
      params = (await api.parameters(this.notebook)).parameters;
    } catch (err) {
      this.paramsBox.replaceChildren(
        h('div', { class: 'shiol-Problem shiol-Error' }, err instanceof ApiError ? err.message : String(err))
      );
      this.check();
      return;
    }
    this.params = params.map(param => ({
      param,
      input: h('input', { type: 'text', name: `param-${param.name}`, value: shown(param.default), spellcheck: 'false' })
    }));
    this.paramsBox.replaceChildren(
      ...(this.params.length === 0 ? [h('span', { class: 'shiol-Muted' }, 'The parameters cell declares nothing.')] : []),
      ...this.params.map(({ param, input }) =>
        h(
          'div',
          { class: 'shiol-FormRow' },
          h('label', { class: 'shiol-Label' }, h('code', {}, param.name), param.type ? h('span', { class: 'shiol-Muted' }, ` ${param.type}`) : null),
          h('div', { class: 'shiol-Control' }, input, param.help ? h('div', { class: 'shiol-Muted' }, param.help) : null, this.slot(`parameters.${param.name}`))
        )
      )
    );
    this.check();
  }

  /** The job as typed, and the problems found before asking the server (a parameter of the wrong type). */
  private gather(): { add: IJobAdd; local: IProblem[] } {
    const local: IProblem[] = [];
    const parameters: Record<string, unknown> = {};
    for (const { param, input } of this.params) {
      const parsed = parseValue(input.value, param.type);
      if ('problem' in parsed) {
        local.push({ field: `parameters.${param.name}`, reason: parsed.problem });
      } else if (JSON.stringify(parsed.value) !== JSON.stringify(param.default)) {
        parameters[param.name] = parsed.value; // only what differs from the notebook's default is written
      }
    }
    let schedule: ScheduleSpec = 'manual';
    if (this.kinds.cron.checked) {
      schedule = { cron: this.cron.value.trim(), timezone: this.timezone.value.trim() };
    } else if (this.kinds.after_drawing.checked) {
      schedule = { after_drawing: this.delay.value.trim() };
    }
    const add: IJobAdd = {
      notebook: this.notebook,
      name: this.name.value.trim(),
      schedule,
      parameters,
      secrets: this.secrets.value.split(/[\s,]+/).filter(Boolean)
    };
    if (this.description.value.trim()) {
      add.description = this.description.value.trim();
    }
    return { add, local };
  }

  private changed(): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.check(), CHECK_DELAY_MS);
  }

  private async check(): Promise<void> {
    const seq = ++this.checkSeq;
    const { add, local } = this.gather();
    let problems = local;
    try {
      problems = [...local, ...(await api.check(add)).problems];
    } catch (err) {
      problems = [...local, { field: (err as ApiError).field ?? null, reason: (err as Error).message }];
    }
    if (seq === this.checkSeq && !this.isDisposed) {
      this.showProblems(problems);
    }
  }

  private showProblems(problems: IProblem[]): void {
    const byNode = new Map<HTMLDivElement, string[]>();
    for (const problem of problems) {
      const node = this.slotFor(problem.field);
      byNode.set(node, [...(byNode.get(node) ?? []), problem.field && node === this.general ? `${problem.field}: ${problem.reason}` : problem.reason]);
    }
    for (const node of [...this.fields.values(), this.general]) {
      const reasons = byNode.get(node) ?? [];
      node.replaceChildren(...reasons.map(reason => h('div', {}, reason)));
      node.classList.toggle('shiol-Error', reasons.length > 0);
    }
    this.create.disabled = problems.length > 0;
    this.create.title = problems.length > 0 ? 'Fix the problems shown first' : 'Write the job to jobs.toml';
  }

  private slotFor(field: string | null): HTMLDivElement {
    let key = field ?? '';
    if (key === 'notebooks') {
      key = 'notebook';
    }
    while (key) {
      const node = this.fields.get(key);
      if (node) {
        return node;
      }
      key = key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : '';
    }
    return this.general;
  }

  private async submit(): Promise<void> {
    window.clearTimeout(this.timer);
    const { add, local } = this.gather();
    if (local.length > 0) {
      this.showProblems(local);
      return;
    }
    this.create.disabled = true;
    try {
      const job = await api.addJob(add);
      this.dispose();
      this.done(job);
    } catch (err) {
      const e = err as ApiError;
      this.showProblems(e.problems?.length ? e.problems : [{ field: e.field ?? null, reason: e.message }]);
    }
  }
}
