/**
 * Which Python runs the server, and what to say when it cannot. Pure: the Python extension's
 * API and the probe are passed in.
 */

export type PythonSource = 'setting' | 'python extension' | 'default';

export interface Interpreter {
  command: string;
  source: PythonSource;
}

/** starchat.python, else the Python extension's interpreter, else python3 (python on Windows). */
export function chooseInterpreter(
  setting: string,
  fromPythonExtension: string | undefined,
  platform: string,
): Interpreter {
  if (setting.trim() !== '') {
    return { command: setting.trim(), source: 'setting' };
  }
  if (fromPythonExtension !== undefined && fromPythonExtension.trim() !== '') {
    return { command: fromPythonExtension, source: 'python extension' };
  }
  return { command: platform === 'win32' ? 'python' : 'python3', source: 'default' };
}

/** The arguments that start the server over stdio. */
export const SERVE_ARGS = ['-m', 'starchat_lsp', 'serve'];

/** The arguments of the probe: exits 0 and prints the version when the package is there. */
export const PROBE_ARGS = [
  '-c',
  'import importlib.metadata as m, starchat_lsp; print(m.version("starchat-lsp"))',
];

export interface ProbeResult {
  /** The spawn error's code (ENOENT: no such program), if it could not start. */
  spawnError?: string;
  exitCode: number | null;
  stderr: string;
}

/** The user-facing problem of a failed probe, or undefined when the server can start. */
export function probeProblem(interpreter: Interpreter, probe: ProbeResult): string | undefined {
  const where =
    interpreter.source === 'setting'
      ? ' (from starchat.python)'
      : interpreter.source === 'python extension'
        ? " (the Python extension's interpreter)"
        : '';
  if (probe.spawnError === 'ENOENT' || probe.spawnError === 'EACCES') {
    return `starchat: Python not found at '${interpreter.command}'${where}: set starchat.python to a Python 3.10+ that has starchat-lsp installed.`;
  }
  if (probe.spawnError !== undefined) {
    return `starchat: cannot run '${interpreter.command}'${where} (${probe.spawnError}).`;
  }
  if (probe.exitCode === 0) {
    return undefined;
  }
  if (/No module named .?starchat_lsp/.test(probe.stderr)) {
    return `starchat: the starchat-lsp package is not installed in '${interpreter.command}'${where}: run \`${interpreter.command} -m pip install starchat-lsp\` or set starchat.python.`;
  }
  const lastLine = probe.stderr.trim().split('\n').pop() ?? '';
  return `starchat: '${interpreter.command}'${where} cannot import starchat_lsp: ${lastLine || `exit code ${probe.exitCode}`}.`;
}
