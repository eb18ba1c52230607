/** Finds the Python that has starchat-lsp, starts `python -m starchat_lsp serve`, and its LanguageClient. */

import { execFile } from 'node:child_process';
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  LanguageClient,
  type LanguageClientOptions,
  RevealOutputChannelOn,
  type ServerOptions,
} from 'vscode-languageclient/node';
import {
  chooseInterpreter,
  type Interpreter,
  PROBE_ARGS,
  probeProblem,
  type ProbeResult,
  SERVE_ARGS,
} from './interpreter';
import { clientSettings, serverSettings } from './settings';

interface PythonExtensionApi {
  environments?: {
    getActiveEnvironmentPath(resource?: vscode.Uri): { path: string };
    resolveEnvironment(path: string): Promise<{ executable?: { uri?: vscode.Uri } } | undefined>;
    onDidChangeActiveEnvironmentPath?: vscode.Event<unknown>;
  };
}

async function pythonExtension(): Promise<PythonExtensionApi | undefined> {
  const extension = vscode.extensions.getExtension<PythonExtensionApi>('ms-python.python');
  if (extension === undefined) {
    return undefined;
  }
  try {
    return extension.isActive ? extension.exports : await extension.activate();
  } catch {
    return undefined;
  }
}

/** The interpreter the Python extension has selected for the first workspace folder, if any. */
async function pythonFromExtension(): Promise<string | undefined> {
  const environments = (await pythonExtension())?.environments;
  if (environments === undefined) {
    return undefined;
  }
  try {
    const resource = vscode.workspace.workspaceFolders?.[0]?.uri;
    const active = environments.getActiveEnvironmentPath(resource);
    const resolved = await environments.resolveEnvironment(active.path);
    return resolved?.executable?.uri?.fsPath ?? active.path;
  } catch {
    return undefined;
  }
}

/** Calls `listener` when the Python extension's selected interpreter changes. */
export async function onPythonChange(listener: () => void): Promise<vscode.Disposable | undefined> {
  const event = (await pythonExtension())?.environments?.onDidChangeActiveEnvironmentPath;
  return event?.(() => listener());
}

export async function resolveInterpreter(): Promise<Interpreter> {
  const setting = clientSettings(vscode.workspace.getConfiguration('starchat')).python;
  const fromExtension = setting === '' ? await pythonFromExtension() : undefined;
  return chooseInterpreter(setting, fromExtension, process.platform);
}

function probe(command: string): Promise<ProbeResult> {
  return new Promise((resolve) => {
    execFile(command, PROBE_ARGS, { timeout: 60_000 }, (error, _stdout, stderr) => {
      const spawnError = (error as NodeJS.ErrnoException | null)?.code;
      if (typeof spawnError === 'string') {
        resolve({ spawnError, exitCode: null, stderr });
      } else {
        resolve({ exitCode: error ? ((error as { code?: number }).code ?? 1) : 0, stderr });
      }
    });
  });
}

/** Owns the language client: start, stop, restart, and settings pushed on change. */
export class Server implements vscode.Disposable {
  private client: LanguageClient | undefined;
  private readonly changed = new vscode.EventEmitter<LanguageClient | undefined>();
  /** Fires with the new client after a start, and with undefined after a stop. */
  readonly onDidChangeClient = this.changed.event;

  constructor(readonly output: vscode.LogOutputChannel) {}

  get current(): LanguageClient | undefined {
    return this.client?.isRunning() ? this.client : undefined;
  }

  async start(): Promise<LanguageClient | undefined> {
    const interpreter = await resolveInterpreter();
    this.output.info(`starting ${interpreter.command} ${SERVE_ARGS.join(' ')} (${interpreter.source})`);
    const problem = probeProblem(interpreter, await probe(interpreter.command));
    if (problem !== undefined) {
      this.output.error(problem);
      void vscode.window.showErrorMessage(problem, 'Show log', 'Open Settings').then((choice) => {
        if (choice === 'Show log') {
          this.output.show();
        } else if (choice === 'Open Settings') {
          void vscode.commands.executeCommand('workbench.action.openSettings', 'starchat.python');
        }
      });
      return undefined;
    }
    const serverOptions: ServerOptions = {
      command: interpreter.command,
      args: SERVE_ARGS,
      // No `transport`: TransportKind.stdio would append `--stdio`, which `serve` rejects.
      options: { cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath },
    };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: serverSettings(vscode.workspace.getConfiguration('starchat')),
      outputChannel: this.output,
      traceOutputChannel: this.output,
      revealOutputChannelOn: RevealOutputChannelOn.Never,
    };
    const client = new LanguageClient('starchat', 'starchat', serverOptions, clientOptions);
    this.client = client;
    try {
      await client.start();
    } catch (error) {
      this.client = undefined;
      void client.dispose().catch(() => undefined);
      this.output.error(`the server did not start: ${String(error)}`);
      void vscode.window.showErrorMessage('starchat: the server did not start.', 'Show log').then((choice) => {
        if (choice === 'Show log') {
          this.output.show();
        }
      });
      return undefined;
    }
    this.changed.fire(client);
    return client;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client !== undefined) {
      this.changed.fire(undefined);
      try {
        await client.stop(5_000);
      } catch (error) {
        this.output.warn(`stopping the server: ${String(error)}`);
      }
    }
  }

  async restart(): Promise<LanguageClient | undefined> {
    await this.stop();
    return this.start();
  }

  /** Sends the current settings (the whole object: the server resets keys left out). */
  async pushSettings(): Promise<void> {
    const settings = serverSettings(vscode.workspace.getConfiguration('starchat'));
    await this.current?.sendNotification(DidChangeConfigurationNotification.type, { settings });
  }

  dispose(): void {
    void this.stop();
    this.changed.dispose();
  }
}
