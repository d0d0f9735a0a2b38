// Suite-wide secret scan of the operator's log lines. Every e2e file registers the secret values it
// hands to the operator (Git passwords, bearer and ServiceAccount tokens, Slack webhook URLs, private
// keys) with registerSecret(), and every operator log sink appends to a file of the run's scan
// directory (.signet/e2e-scan/<run>/logs/): the in-process loggers of e2e/support/signet.ts and the
// stdout/stderr of processes started by e2e/support/operator-process.ts. e2e/zz-secret-scan.test.ts,
// which the sequencer in e2e/support/sequencer.ts runs after every other file, scans every line of
// every sink for every registered secret (raw, JSON-escaped, base64 at any alignment, URL path and
// last segment, percent-encoded) and fails on a hit, naming the file, the line and the secret's label
// (never its value). Control-plane component logs are not ours and are not scanned.
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeSync,
} from 'node:fs';
import { basename, join } from 'node:path';
import { expect, inject } from 'vitest';

export class SecretScanError extends Error {
  readonly code: 'SECRET_TOO_SHORT' | 'NO_SCAN_DIR';
  constructor(code: SecretScanError['code'], message: string) {
    super(message);
    this.name = 'SecretScanError';
    this.code = code;
  }
}

/** Shorter values would match by chance; a test secret this short is a test bug. */
export const minSecretLength = 8;
const secretsFile = 'secrets.jsonl';
const logsDir = 'logs';

export interface RegisteredSecret {
  /** Says what the value is (shown on a hit instead of the value), e.g. "hostile: Git password". */
  readonly label: string;
  readonly value: string;
  /** The test file that registered it. */
  readonly source: string;
}

/**
 * This run's scan directory (provided by e2e/support/global-setup.ts), or undefined outside an e2e
 * run (e.g. a bench using the support code).
 */
export function scanDir(): string | undefined {
  try {
    return inject('secretScanDir');
  } catch {
    return undefined;
  }
}

function currentTestFile(): string {
  try {
    const path = expect.getState().testPath;
    return path === undefined ? 'unknown' : basename(path);
  } catch {
    return 'unknown';
  }
}

const registered = new Set<string>();

/**
 * Registers a secret value of this test file for the suite-wide scan. Call it for every value that
 * must never reach a log line, before the operator can see it.
 */
export function registerSecret(label: string, value: string): void {
  if (value.length < minSecretLength) {
    throw new SecretScanError(
      'SECRET_TOO_SHORT',
      `registerSecret(${JSON.stringify(label)}): a value of ${value.length} characters would match by chance; use a random test secret of at least ${minSecretLength}`,
    );
  }
  const dir = scanDir();
  if (dir === undefined || registered.has(`${label}\0${value}`)) return;
  registered.add(`${label}\0${value}`);
  mkdirSync(dir, { recursive: true });
  const record: RegisteredSecret = { label, value, source: currentTestFile() };
  appendFileSync(join(dir, secretsFile), `${JSON.stringify(record)}\n`);
}

export interface LogSink {
  /** The file this sink appends to (undefined outside an e2e run). */
  readonly path: string | undefined;
  /** Appends text as written by the operator (complete lines end with '\n'). Synchronous. */
  append(text: string): void;
}

let sinkSequence = 0;

/**
 * A file in this run's scan directory that an operator log stream is copied to, named after the
 * test file, `name` and the worker pid. Writes are synchronous so nothing is lost when a worker exits.
 */
export function openLogSink(name: string): LogSink {
  const dir = scanDir();
  if (dir === undefined) return { path: undefined, append() {} };
  sinkSequence += 1;
  const safe = name.replace(/[^A-Za-z0-9._-]+/g, '-');
  const path = join(dir, logsDir, `${currentTestFile()}--${safe}--${process.pid}-${sinkSequence}.log`);
  let fd: number | undefined;
  return {
    path,
    append(text: string) {
      if (fd === undefined) {
        // Kept open for the worker's life (the OS closes it when the worker exits).
        mkdirSync(join(dir, logsDir), { recursive: true });
        fd = openSync(path, 'a');
      }
      writeSync(fd, text);
    },
  };
}

export function readRegisteredSecrets(dir: string): RegisteredSecret[] {
  const path = join(dir, secretsFile);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as RegisteredSecret);
}

export interface SecretForm {
  /** e.g. "raw", "base64 (offset 1)", "URL path". */
  readonly form: string;
  readonly text: string;
}

/**
 * Base64 of `value` as it appears inside the base64 of any longer byte string: for each of the three
 * alignments, only the characters determined by `value`'s bytes alone.
 */
function base64Forms(bytes: Buffer): SecretForm[] {
  const forms: SecretForm[] = [];
  for (let offset = 0; offset < 3; offset++) {
    const padded = Buffer.concat([Buffer.alloc(offset), bytes]);
    const start = Math.ceil((8 * offset) / 6);
    const end = Math.floor((8 * (offset + bytes.length)) / 6);
    for (const [name, encoding] of [
      ['base64', 'base64'],
      ['base64url', 'base64url'],
    ] as const) {
      const text = padded.toString(encoding).slice(start, end);
      if (text.length >= minSecretLength) forms.push({ form: `${name} (offset ${offset})`, text });
    }
  }
  return forms;
}

/** Every form in which `value` could reach a log line. */
export function secretForms(value: string): SecretForm[] {
  const forms: SecretForm[] = [{ form: 'raw', text: value }];
  const escaped = JSON.stringify(value).slice(1, -1);
  if (escaped !== value) forms.push({ form: 'JSON-escaped', text: escaped });
  const encoded = encodeURIComponent(value);
  if (encoded !== value) forms.push({ form: 'percent-encoded', text: encoded });
  forms.push(...base64Forms(Buffer.from(value, 'utf8')));
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    try {
      const url = new URL(value);
      const path = `${url.pathname}${url.search}`;
      if (path.length >= minSecretLength && path !== '/') forms.push({ form: 'URL path', text: path });
      const last = url.pathname
        .split('/')
        .filter((s) => s !== '')
        .at(-1);
      if (last !== undefined && last.length >= minSecretLength)
        forms.push({ form: 'URL last path segment', text: last });
      if (url.password.length >= minSecretLength) forms.push({ form: 'URL password', text: url.password });
    } catch {
      // not a URL after all
    }
  }
  if (value.includes('-----BEGIN ')) {
    // A PEM block logged line by line: every base64 body line but the first (for OpenSSH and PKCS#8
    // keys the first line is the format header and public key, not secret).
    const body = value
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('-----'));
    for (const [index, line] of body.entries()) {
      if (index > 0 && line.length >= 16) forms.push({ form: `PEM body line ${index + 1}`, text: line });
    }
    const joined = body.join('');
    if (joined.length >= minSecretLength) forms.push({ form: 'PEM body joined', text: joined });
  }
  const unique = new Map<string, SecretForm>();
  for (const form of forms) if (!unique.has(form.text)) unique.set(form.text, form);
  return [...unique.values()];
}

export interface SecretHit {
  /** Log file, relative to the scan directory. */
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  readonly label: string;
  readonly form: string;
  readonly registeredBy: string;
}

export interface ScanResult {
  readonly files: number;
  readonly lines: number;
  readonly bytes: number;
  readonly secrets: number;
  readonly forms: number;
  readonly hits: readonly SecretHit[];
}

/** Scans every log sink file of `dir` for every form of every secret. */
export function scanLogSinks(dir: string, secrets: readonly RegisteredSecret[]): ScanResult {
  const logs = join(dir, logsDir);
  const names = existsSync(logs)
    ? readdirSync(logs)
        .filter((n) => n.endsWith('.log'))
        .sort()
    : [];
  const expanded = secrets.flatMap((secret) => secretForms(secret.value).map((form) => ({ secret, form })));
  const hits: SecretHit[] = [];
  let lines = 0;
  let bytes = 0;
  for (const name of names) {
    const content = readFileSync(join(logs, name), 'utf8');
    bytes += content.length;
    const split = content.split('\n');
    lines += split.length - (split.at(-1) === '' ? 1 : 0);
    for (const { secret, form } of expanded) {
      if (!content.includes(form.text)) continue;
      for (const [index, line] of split.entries()) {
        if (line.includes(form.text)) {
          hits.push({
            file: join(logsDir, name),
            line: index + 1,
            label: secret.label,
            form: form.form,
            registeredBy: secret.source,
          });
        }
      }
    }
  }
  return { files: names.length, lines, bytes, secrets: secrets.length, forms: expanded.length, hits };
}

/** One line per hit, without the secret itself. */
export function formatHit(dir: string, hit: SecretHit): string {
  return `${join(dir, hit.file)}:${hit.line}: ${hit.label} (${hit.form}; registered by ${hit.registeredBy})`;
}
