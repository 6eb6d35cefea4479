/**
 * Read-only views opened from a run: the executed notebook of one step (rendered cell by cell with
 * Lab's untrusted rendermime: no script runs, nothing is editable or executable) and the differences
 * between two runs of a job.
 */
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { Panel, Widget } from '@lumino/widgets';

import { api, ApiError, IDifference, IRun } from './api';
import { badge, h, show, etTime } from './dom';

type MultiLine = string | string[];

interface ICell {
  cell_type: string;
  source: MultiLine;
  execution_count?: number | null;
  outputs?: IOutput[];
}

interface IOutput {
  output_type: string;
  name?: string;
  text?: MultiLine;
  data?: Record<string, MultiLine | object>;
  metadata?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

const joined = (text: MultiLine | undefined): string => (Array.isArray(text) ? text.join('') : (text ?? ''));

/** The executed notebook ``name`` archived by run ``runId``, read-only. */
export class NotebookViewer extends Panel {
  constructor(
    readonly runId: string,
    readonly name: string,
    private readonly rendermime: IRenderMimeRegistry
  ) {
    super();
    this.addClass('shiol-NotebookViewer');
    this.id = `shiol-nb-${runId}-${name}`.replace(/[^A-Za-z0-9_-]/g, '-');
    this.title.label = `${name} (read-only)`;
    this.title.caption = `${name} as executed by run ${runId} (archived; read-only)`;
    this.title.closable = true;
    this.addWidget(
      new Widget({
        node: h(
          'div',
          { class: 'shiol-Banner' },
          `Read-only: ${name} as run ${runId} executed it (from the archive; not editable, not executable).`
        )
      })
    );
    void this.load();
  }

  private async load(): Promise<void> {
    let cells: ICell[];
    try {
      const notebook = JSON.parse(await api.runFile(this.runId, this.name));
      cells = Array.isArray(notebook.cells) ? notebook.cells : [];
    } catch (err) {
      const text = err instanceof ApiError ? err.message : `not a notebook: ${String(err)}`;
      this.addWidget(new Widget({ node: h('div', { class: 'shiol-Message shiol-Error' }, text) }));
      return;
    }
    for (const cell of cells) {
      await this.addCell(cell);
    }
  }

  private async addCell(cell: ICell): Promise<void> {
    const box = new Panel();
    box.addClass('shiol-Cell');
    box.addClass(`shiol-Cell-${cell.cell_type}`);
    this.addWidget(box);
    if (cell.cell_type === 'markdown') {
      await this.render(box, { 'text/markdown': joined(cell.source) });
      return;
    }
    const prompt = cell.cell_type === 'code' ? `[${cell.execution_count ?? ' '}]` : '';
    box.addWidget(
      new Widget({
        node: h('div', { class: 'shiol-Source' }, h('span', { class: 'shiol-Prompt' }, prompt), h('pre', {}, joined(cell.source)))
      })
    );
    for (const output of cell.outputs ?? []) {
      await this.renderOutput(box, output);
    }
  }

  private async renderOutput(box: Panel, output: IOutput): Promise<void> {
    if (output.output_type === 'stream') {
      const mime = output.name === 'stderr' ? 'application/vnd.jupyter.stderr' : 'application/vnd.jupyter.stdout';
      await this.render(box, { [mime]: joined(output.text) });
    } else if (output.output_type === 'error') {
      const text = (output.traceback ?? [`${output.ename}: ${output.evalue}`]).join('\n');
      await this.render(box, { 'application/vnd.jupyter.stderr': text });
    } else if (output.data) {
      const data: Record<string, string | object> = {};
      for (const [mime, value] of Object.entries(output.data)) {
        data[mime] = typeof value === 'string' || Array.isArray(value) ? joined(value as MultiLine) : value;
      }
      await this.render(box, data, output.metadata ?? {});
    }
  }

  private async render(box: Panel, data: Record<string, string | object>, metadata: Record<string, unknown> = {}): Promise<void> {
    const mime = this.rendermime.preferredMimeType(data as never, 'ensure');
    if (!mime) {
      return;
    }
    const renderer = this.rendermime.createRenderer(mime);
    renderer.addClass('shiol-Output');
    box.addWidget(renderer);
    const model = this.rendermime.createModel({ data: data as never, metadata: metadata as never, trusted: false });
    await renderer.renderModel(model);
  }
}

/** The differences between the previous run of a job and a run (``shiol runs diff PREVIOUS RUN``). */
export class DiffView extends Widget {
  constructor(
    readonly previous: IRun,
    readonly run: IRun
  ) {
    super();
    this.addClass('shiol-DiffView');
    this.id = `shiol-diff-${previous.run_id}-${run.run_id}`;
    this.title.label = `Diff ${run.job}`;
    this.title.caption = `${previous.run_id} → ${run.run_id}`;
    this.title.closable = true;
    void this.load();
  }

  private async load(): Promise<void> {
    const head = h(
      'div',
      { class: 'shiol-DiffHead' },
      h('h2', {}, `${this.run.job}: what changed`),
      h('div', {}, 'previous ', badge(this.previous.status), ` ${this.previous.run_id} (${etTime(this.previous.started_at)})`),
      h('div', {}, 'this run ', badge(this.run.status), ` ${this.run.run_id} (${etTime(this.run.started_at)})`)
    );
    let differences: IDifference[];
    try {
      differences = (await api.diff(this.previous.run_id, this.run.run_id)).differences;
    } catch (err) {
      this.node.replaceChildren(head, h('div', { class: 'shiol-Message shiol-Error' }, err instanceof ApiError ? err.message : String(err)));
      return;
    }
    const body =
      differences.length === 0
        ? h('p', { class: 'shiol-Empty' }, 'No differences in parameters, data, code, outputs or metrics.')
        : h(
            'table',
            { class: 'shiol-DiffTable' },
            h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'previous run'), h('th', {}, 'this run'))),
            h(
              'tbody',
              {},
              ...differences.map(d =>
                h('tr', {}, h('td', {}, h('code', {}, d.field)), h('td', {}, show(d.first)), h('td', {}, show(d.second)))
              )
            )
          );
    this.node.replaceChildren(head, body);
  }
}
