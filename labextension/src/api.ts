/**
 * The workbench's REST API (the server extension shiol_lib.lab, prefix /shiol/api/v1/), typed.
 *
 * Every request goes through Jupyter's ServerConnection: the token and the XSRF header are added by it.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PREFIX = 'shiol/api/v1';

export interface IRun {
  run_id: string;
  job: string;
  status: string;
  trigger: string;
  slot: string | null;
  started_at: string;
  finished_at: string | null;
  started_at_et: string;
  duration_s: number | null;
  current_step: string | null;
  step_count: number;
  steps_done: number;
  error: string | null;
  error_class: string | null;
  has_report: boolean;
}

export interface IStep {
  position: number;
  name: string;
  status: string;
  started_at: string | null;
  finished_at: string | null;
  duration_s: number | null;
  error: string | null;
  notebook: string | null;
  report: string | null;
}

export interface IRunDetail extends IRun {
  steps: IStep[];
  manifest: Record<string, unknown>;
  rerun_command: string | null;
  parent_run_id: string | null;
}

export interface IRunPage {
  runs: IRun[];
  total: number;
  offset: number;
  limit: number;
}

export interface ISchedule {
  kind: string;
  cron: string | null;
  timezone: string | null;
  delay_s: number | null;
  text: string;
}

export interface IJob {
  name: string;
  description: string;
  builtin: boolean;
  schedule: ISchedule;
  next_run: string | null;
  next_run_utc: string | null;
  last_result: { run_id: string; status: string; started_at: string } | null;
  paused: boolean;
  running: boolean;
  source: string;
  notebooks: string[];
  parameters: Record<string, unknown>;
  secrets: string[];
}

export interface IProblem {
  field: string | null;
  reason: string;
}

export interface IDifference {
  field: string;
  first: unknown;
  second: unknown;
}

export interface INotebookParameter {
  name: string;
  type: string | null;
  default: unknown;
  help: string | null;
}

export type ScheduleSpec = 'manual' | { cron: string; timezone: string } | { after_drawing: string };

export interface IJobAdd {
  notebook: string;
  name: string;
  description?: string;
  schedule: ScheduleSpec;
  parameters: Record<string, unknown>;
  secrets: string[];
}

/** A refused request: the server's reason, the field it names and (for a job) each problem. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly field: string | null = null,
    readonly problems: IProblem[] = []
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

const settings = (): ServerConnection.ISettings => ServerConnection.makeSettings();

/** The absolute URL of an API path (for an iframe's src: the login cookie authenticates it). */
export function apiUrl(path: string): string {
  return URLExt.join(settings().baseUrl, API_PREFIX, path);
}

/** One JSON request; an answer that is not 2xx becomes an ApiError with the server's reason. */
export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const s = settings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(URLExt.join(s.baseUrl, API_PREFIX, path), init, s);
  } catch (err) {
    throw new ApiError(0, `the Jupyter server did not answer (${String(err)}); is it still running?`);
  }
  const text = await response.text();
  let body: Record<string, unknown> = {};
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = { error: text.slice(0, 300) };
    }
  }
  if (!response.ok) {
    const reason =
      typeof body.error === 'string' ? body.error : `${response.status} ${response.statusText} from ${path}`;
    const problems = Array.isArray(body.problems) ? (body.problems as IProblem[]) : [];
    throw new ApiError(response.status, reason, (body.field as string | null) ?? null, problems);
  }
  return body as T;
}

/** The raw text of an API path (an archived notebook). */
export async function requestText(path: string): Promise<string> {
  const s = settings();
  const response = await ServerConnection.makeRequest(URLExt.join(s.baseUrl, API_PREFIX, path), {}, s);
  const text = await response.text();
  if (!response.ok) {
    let reason = `${response.status} ${response.statusText} from ${path}`;
    try {
      reason = JSON.parse(text).error ?? reason;
    } catch {
      // not JSON: keep the status line
    }
    throw new ApiError(response.status, reason);
  }
  return text;
}

const post = <T>(path: string, body: unknown = {}): Promise<T> =>
  request<T>(path, { method: 'POST', body: JSON.stringify(body) });

const q = encodeURIComponent;

export const api = {
  runs: (filter: { job?: string; status?: string; limit?: number; offset?: number }): Promise<IRunPage> => {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(filter)) {
      if (value !== undefined && value !== '') {
        params.set(key, String(value));
      }
    }
    const query = params.toString();
    return request<IRunPage>(query ? `runs?${query}` : 'runs');
  },
  run: (runId: string): Promise<IRunDetail> => request<IRunDetail>(`runs/${q(runId)}`),
  rerun: (runId: string): Promise<{ started: boolean; job: string }> => post(`runs/${q(runId)}/rerun`),
  diff: (first: string, second: string): Promise<{ differences: IDifference[] }> =>
    request(`runs/${q(first)}/diff/${q(second)}`),
  runFile: (runId: string, name: string): Promise<string> => requestText(`runs/${q(runId)}/files/${q(name)}`),
  jobs: (): Promise<{ jobs: IJob[] }> => request('jobs'),
  runJob: (name: string): Promise<{ started: boolean; job: string }> => post(`jobs/${q(name)}/run`),
  pause: (name: string): Promise<IJob> => post(`jobs/${q(name)}/pause`),
  resume: (name: string): Promise<IJob> => post(`jobs/${q(name)}/resume`),
  check: (add: IJobAdd): Promise<{ problems: IProblem[] }> => post('jobs/check', add),
  addJob: (add: IJobAdd): Promise<IJob> => post('jobs', add),
  parameters: (path: string): Promise<{ parameters: INotebookParameter[] }> =>
    request(`notebooks/parameters?path=${q(path)}`)
};
