/** Small DOM helpers, status badges and the ET/UTC time lines shared by the panels. */

type Child = Node | string | null | undefined | false;

/** An element with classes, attributes and children (strings become text: never parsed as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'class') {
      node.className = value;
    } else {
      node.setAttribute(key, value);
    }
  }
  for (const child of children) {
    if (child !== null && child !== undefined && child !== false) {
      node.append(child);
    }
  }
  return node;
}

/** A button running ``action`` on click (disabled while its promise is pending). */
export function button(label: string, action: () => Promise<void> | void, cls = ''): HTMLButtonElement {
  const node = h('button', { class: `jp-Button shiol-Button ${cls}`.trim(), type: 'button' }, label);
  node.addEventListener('click', async event => {
    event.stopPropagation();
    node.disabled = true;
    try {
      await action();
    } finally {
      node.disabled = false;
    }
  });
  return node;
}

/** The badge of a run status (success, failed, running, ...). */
export function badge(status: string): HTMLSpanElement {
  return h('span', { class: `shiol-Badge shiol-Badge-${status}`, title: `status: ${status}` }, status);
}

const ET = 'America/New_York';

function format(date: Date, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hourCycle: 'h23'
  }).formatToParts(date);
  const get = (type: string): string => parts.find(p => p.type === type)?.value ?? '';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')}`;
}

/** "2026-12-07 21:05:00 ET" for an ISO instant (or "-" when there is none). */
export function etTime(iso: string | null): string {
  return iso ? `${format(new Date(iso), ET)} ET` : '-';
}

/** "2026-12-08 02:05:00 UTC" for an ISO instant (or "-"). */
export function utcTime(iso: string | null): string {
  return iso ? `${format(new Date(iso), 'UTC')} UTC` : '-';
}

/** "12.3 s", "4 min 05 s", "1 h 02 min" for a duration in seconds. */
export function duration(seconds: number | null): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(1)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) {
    return `${minutes} min ${String(Math.round(seconds % 60)).padStart(2, '0')} s`;
  }
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

/** A value as one readable line (JSON for anything but a string). */
export function show(value: unknown): string {
  if (value === null || value === undefined) {
    return '—';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** "step 2/6: signals" for a run in flight ("starting" before its first step). */
export function progressText(run: { steps_done: number; step_count: number; current_step: string | null }): string {
  if (run.step_count > 0 && run.current_step === null && run.steps_done >= run.step_count) {
    return `${run.steps_done}/${run.step_count} steps done, closing the run`;
  }
  if (run.step_count > 0) {
    const position = Math.min(run.steps_done + 1, run.step_count);
    return `step ${position}/${run.step_count}: ${run.current_step ?? 'starting'}`;
  }
  return run.current_step ? `step ${run.current_step}` : 'starting';
}
