/**
 * shiol-workbench-lab: the SHIOL+ Workbench in JupyterLab. A Runs panel and a Jobs panel in the left
 * sidebar, run reports, executed notebooks and diffs in main-area tabs, and "Schedule…" in the notebook
 * toolbar and the file browser's context menu. Everything it shows comes from the server extension
 * shiol_lib.lab (/shiol/api/v1/).
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, Notification, ToolbarButton } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IFileBrowserFactory } from '@jupyterlab/filebrowser';
import { INotebookModel, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { historyIcon, LabIcon, listIcon, notebookIcon, tableRowsIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IRun } from './api';
import { JobsPanel } from './jobs';
import { RunsPanel } from './runs';
import { RunView } from './runview';
import { ScheduleDialog } from './schedule';
import { DiffView, NotebookViewer } from './viewers';

const COMMANDS = {
  runs: 'shiol:open-runs',
  jobs: 'shiol:open-jobs',
  run: 'shiol:open-run',
  schedule: 'shiol:schedule'
};

function activate(
  app: JupyterFrontEnd,
  rendermime: IRenderMimeRegistry,
  browsers: IFileBrowserFactory | null,
  palette: ICommandPalette | null
): void {
  const opened = new Map<string, MainAreaWidget>();

  const show = (content: Widget): void => {
    const existing = opened.get(content.id);
    if (existing && !existing.isDisposed) {
      content.dispose();
      app.shell.activateById(existing.id);
      return;
    }
    const tab = new MainAreaWidget({ content });
    tab.id = `${content.id}-tab`;
    tab.title.label = content.title.label;
    tab.title.caption = content.title.caption;
    tab.title.icon = content.title.icon;
    tab.title.closable = true;
    content.title.changed.connect(() => {
      tab.title.label = content.title.label;
      tab.title.caption = content.title.caption;
    });
    opened.set(content.id, tab);
    tab.disposed.connect(() => opened.delete(content.id));
    app.shell.add(tab, 'main');
    app.shell.activateById(tab.id);
  };

  const withIcon = <T extends Widget>(widget: T, icon: LabIcon): T => {
    widget.title.icon = icon;
    return widget;
  };
  const openRun = (runId: string): void => {
    const view = new RunView(runId, {
      openNotebook: (run, step) =>
        show(withIcon(new NotebookViewer(run.run_id, step.notebook as string, rendermime), notebookIcon)),
      openDiff: (previous: IRun, run: IRun) => show(withIcon(new DiffView(previous, run), tableRowsIcon)),
      rerunStarted: () => void runs.refresh()
    });
    show(withIcon(view, historyIcon));
  };

  const runs = new RunsPanel(run => openRun(run.run_id));
  runs.title.icon = historyIcon;
  runs.title.caption = 'Runs';
  runs.title.label = 'Runs';
  const jobs = new JobsPanel(openRun, () => void runs.refresh());
  jobs.title.icon = listIcon;
  jobs.title.caption = 'Jobs';
  jobs.title.label = 'Jobs';
  app.shell.add(runs, 'left', { rank: 600 });
  app.shell.add(jobs, 'left', { rank: 610 });

  app.commands.addCommand(COMMANDS.runs, {
    label: 'Workbench: Show Runs',
    execute: () => app.shell.activateById(runs.id)
  });
  app.commands.addCommand(COMMANDS.jobs, {
    label: 'Workbench: Show Jobs',
    execute: () => app.shell.activateById(jobs.id)
  });
  app.commands.addCommand(COMMANDS.run, {
    label: 'Workbench: Open Run',
    execute: args => openRun(String(args.runId))
  });

  const selectedNotebook = (): string | null => {
    const browser = browsers?.tracker.currentWidget;
    const item = browser?.selectedItems().next();
    const model = item && !item.done ? item.value : null;
    return model && model.path.endsWith('.ipynb') ? model.path : null;
  };

  app.commands.addCommand(COMMANDS.schedule, {
    label: 'Schedule…',
    caption: 'Make this notebook a workbench job (jobs.toml): parameters, schedule, secrets',
    execute: args => {
      const path = typeof args.path === 'string' ? args.path : selectedNotebook();
      if (!path) {
        Notification.warning('Select a notebook (.ipynb) to schedule.', { autoClose: 4000 });
        return;
      }
      new ScheduleDialog(path, job => {
        Notification.success(`Job ${job.name} created: ${job.schedule.text}`, { autoClose: 5000 });
        app.shell.activateById(jobs.id);
        void jobs.refresh();
      }).launch();
    }
  });

  app.contextMenu.addItem({
    command: COMMANDS.schedule,
    selector: '.jp-DirListing-item[data-file-type="notebook"]',
    rank: 3
  });

  const toolbarExtension: DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> = {
    createNew: (panel, context) => {
      const schedule = new ToolbarButton({
        className: 'shiol-ScheduleButton',
        label: 'Schedule…',
        tooltip: 'Make this notebook a workbench job',
        onClick: () => void app.commands.execute(COMMANDS.schedule, { path: context.path })
      });
      panel.toolbar.insertAfter('cellType', 'shiol-schedule', schedule);
      return schedule;
    }
  };
  app.docRegistry.addWidgetExtension('Notebook', toolbarExtension);

  if (palette) {
    for (const command of [COMMANDS.runs, COMMANDS.jobs]) {
      palette.addItem({ command, category: 'SHIOL+ Workbench' });
    }
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'shiol-workbench-lab:plugin',
  description: 'The SHIOL+ Workbench: Runs and Jobs panels, run reports, Schedule… for notebooks.',
  autoStart: true,
  requires: [IRenderMimeRegistry],
  optional: [IFileBrowserFactory, ICommandPalette],
  activate
};

export default plugin;
