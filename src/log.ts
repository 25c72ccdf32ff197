// Logging: one winston logger for the process, a child per module, md_server's three levels
// (base, stream, file) and debug overriding them all.

import fs from 'node:fs';
import path from 'node:path';
import winston from 'winston';

export type Level = 'error' | 'warn' | 'info' | 'debug';
export type Logger = winston.Logger;

/** `text`: md_server's lines; `json`: one JSON object per line (journald, Loki). */
export type LogFormat = 'text' | 'json';

export interface LogSettings {
  base: Level;
  stream: Level;
  file: Level;
  debug: boolean;
  logfile: string | null;
  /** Text unless set. */
  format?: LogFormat;
}

const ORDER: Record<Level, number> = { error: 0, warn: 1, info: 2, debug: 3 };

/** Accepts Python logging level names as md_server did (WARNING, CRITICAL, ...). */
export function parseLevel(value: string): Level | null {
  switch (value.trim().toLowerCase()) {
    case 'debug':
    case 'notset':
      return 'debug';
    case 'info':
      return 'info';
    case 'warn':
    case 'warning':
      return 'warn';
    case 'error':
    case 'critical':
    case 'fatal':
      return 'error';
    default:
      return null;
  }
}

function stricter(a: Level, b: Level): Level {
  return ORDER[a] <= ORDER[b] ? a : b;
}

const lineFormat = winston.format.printf((info) => {
  const { level, message, timestamp, module: mod, ...rest } = info as Record<string, unknown>;
  const fields = Object.entries(rest)
    .filter(([k]) => typeof k === 'string' && k !== 'splat')
    .map(([k, v]) => `${k}=${typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v)}`)
    .join(' ');
  const where = typeof mod === 'string' ? `mdserver.${mod}` : 'mdserver';
  return `${String(timestamp)} ${where}[${String(level).toUpperCase()}]: ${String(message)}${fields ? ' ' + fields : ''}`;
});

/**
 * One JSON object per line: time, level, module and message first, then the call's own fields as
 * they were given (numbers stay numbers), for log stores that index fields (Loki, journald's
 * JSON export). A field named like one of the four is kept under `field_<name>`.
 */
const jsonFormat = winston.format.printf((info) => {
  const { level, message, timestamp, module: mod, ...rest } = info as Record<string, unknown>;
  const line: Record<string, unknown> = { time: timestamp, level, module: typeof mod === 'string' ? `mdserver.${mod}` : 'mdserver', message };
  for (const [k, v] of Object.entries(rest)) {
    if (k === 'splat') continue;
    line[k in line ? `field_${k}` : k] = v;
  }
  return JSON.stringify(line);
});

const FORMATS: Record<LogFormat, winston.Logform.Format> = {
  text: winston.format.combine(winston.format.timestamp(), lineFormat),
  json: winston.format.combine(winston.format.timestamp(), jsonFormat),
};

const root = winston.createLogger({
  level: 'info',
  format: FORMATS.text,
  transports: [new winston.transports.Console({ level: 'info', stderrLevels: [] })],
});

/** The process logger; before `configureLogging` it writes info and above to stdout. */
export function rootLogger(): Logger {
  return root;
}

/**
 * A child logger that drops calls below the configured level before winston sees them. winston
 * runs the whole format pipeline (timestamp, printf, JSON of every field) for every call and only
 * then lets each transport discard it, so a disabled `debug` on a hot path cost as much as a
 * written line. `root.level` is always the most verbose level any transport wants (see
 * configureLogging), so the check drops exactly what every transport would have dropped.
 */
export function moduleLogger(name: string): Logger {
  const child = root.child({ module: name });
  const write = child.write.bind(child) as unknown as (info: winston.LogEntry) => boolean;
  return Object.create(child, {
    write: {
      value(info: winston.LogEntry): boolean {
        const want = root.levels[info.level];
        const limit = root.levels[root.level];
        if (want !== undefined && limit !== undefined && want > limit) return true;
        return write(info);
      },
    },
  }) as Logger;
}

/** Whether a call at `level` would be written (to skip building expensive log fields). */
export function isLogged(level: Level): boolean {
  const want = root.levels[level];
  const limit = root.levels[root.level];
  return want === undefined || limit === undefined || want <= limit;
}

let fileTransport: winston.transport | null = null;
let fileError: string | null = null;
let configuredFile: string | null = null;
let fileLevel: Level = 'debug';

/** Whether the configured logfile is being written; null error when it is (or none is set). */
export function logfileStatus(): { file: string | null; error: string | null } {
  return { file: configuredFile, error: fileError };
}

/**
 * Applies the configured levels. A logfile that cannot be opened is reported as a warning and
 * logging carries on to stdout: losing the file must never stop the metadata service.
 */
export function configureLogging(s: LogSettings): void {
  const stream = s.debug ? 'debug' : stricter(s.base, s.stream);
  const file = s.debug ? 'debug' : stricter(s.base, s.file);
  root.level = s.debug ? 'debug' : ORDER[stream] > ORDER[file] ? stream : file;
  root.format = FORMATS[s.format ?? 'text'];
  for (const t of root.transports) {
    if (t instanceof winston.transports.Console) t.level = stream;
  }
  const old = fileTransport;
  fileTransport = null;
  if (old) root.remove(old);
  configuredFile = s.logfile;
  fileLevel = file;
  fileError = null;
  if (s.logfile) openLogfile(s.logfile);
}

/** Opens `file` for appending and adds it as the file transport; false (and a warning) if it cannot. */
function openLogfile(file: string): boolean {
  // winston's file transport does not report a file it cannot open, so try it here first.
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.closeSync(fs.openSync(file, 'a'));
  } catch (e) {
    fileError = (e as Error).message;
    root.warn('cannot write the logfile; logging to stdout only', { logfile: file, error: fileError });
    return false;
  }
  const t = new winston.transports.File({ filename: file, level: fileLevel });
  t.on('error', (err: Error) => {
    root.remove(t);
    if (fileTransport === t) fileTransport = null;
    fileError = err.message;
    root.warn('cannot write the logfile; logging to stdout only', { logfile: file, error: err.message });
  });
  fileTransport = t;
  fileError = null;
  root.add(t);
  return true;
}

/**
 * Opens the configured logfile again (SIGUSR1, sent by logrotate after it renamed the file): new
 * lines go to a fresh file at the configured path, and lines still buffered for the old one are
 * flushed into it before it is closed. A logfile that could not be opened before is tried again.
 * Returns false when no logfile is configured or it cannot be opened.
 */
export function reopenLogfile(): boolean {
  if (!configuredFile) return false;
  const old = fileTransport;
  fileTransport = null;
  // The new transport is added before the old one is removed, so no line falls between them.
  const opened = openLogfile(configuredFile);
  if (old) {
    root.remove(old);
    old.close?.();
  }
  return opened;
}

/** Silences everything: tests that build many servers use it to keep their output readable. */
export function silenceLogging(): void {
  root.level = 'error';
  for (const t of root.transports) t.silent = true;
}
