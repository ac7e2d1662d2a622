/**
 * systemd units for services on hosts where systemd is PID 1, rendered from
 * templates/systemd/apertus-service.service: enabled at boot, ordered after the services
 * they call (Requires= and After=), and hardened (a dedicated user, a read-only system
 * but for the paths the service writes, no capabilities, a system call filter).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ApertusError } from '../errors.js';
import { PROJECT_ROOT } from '../project-root.js';

export const SYSTEMD_UNIT_TEMPLATE = path.join(
  PROJECT_ROOT,
  'templates',
  'systemd',
  'apertus-service.service',
);

export interface SystemdUnitOptions {
  /** The service name from the recipe. */
  service: string;
  /** The command, program first; the program must be an absolute path. */
  argv: readonly string[];
  workingDirectory: string;
  /** Account the service runs as; systemd's default (root) when absent. */
  user?: string;
  /** Services (recipe names) this one calls: their units start first, and a stop of theirs stops it. */
  requires?: readonly string[];
  /** Absolute paths the service writes; everything else is read-only to it (ProtectSystem=strict). */
  readWritePaths?: readonly string[];
  /**
   * Files the service reads that its user may not (the host key): name -> absolute path.
   * systemd hands each in as a credential; an argument equal to the path becomes `%d/<name>`.
   */
  credentials?: Readonly<Record<string, string>>;
  description?: string;
  environment?: Readonly<Record<string, string>>;
  /** Template text; the shipped template when absent. */
  template?: string;
}

export function systemdUnitName(service: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(service)) {
    throw new ApertusError('service-invalid', `service name "${service}" cannot name a systemd unit`, {
      hint: 'Use letters, digits, ".", "_" and "-" only, starting with a letter or digit.',
    });
  }
  return `apertus-${service}.service`;
}

function refuseControlCharacters(field: string, value: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new ApertusError(
      'service-invalid',
      `${field} contains a control character, which a unit file cannot hold`,
      {
        hint: 'Remove newlines and other control characters from the value.',
      },
    );
  }
}

/** Escape the specifier and variable expansion systemd applies to most settings. */
function escapeExpansions(value: string): string {
  return value.replaceAll('%', '%%');
}

/**
 * One ExecStart word: bare when it is plainly safe, else double-quoted with C escapes.
 * `%` specifiers and `$` variables are expanded even inside quotes, so both are doubled.
 */
export function quoteSystemdArg(arg: string): string {
  refuseControlCharacters('a command argument', arg);
  // A function replacer: in a replacement string '$$' would mean one '$'.
  const escaped = arg.replaceAll('%', '%%').replaceAll('$', () => '$$');
  if (/^[A-Za-z0-9_@+=:,./-]+$/.test(arg)) return escaped;
  return `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

/** A unit template shipped in templates/systemd/. */
export function readUnitTemplate(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ApertusError('template-missing', `cannot read the systemd unit template ${file}`, {
      hint: 'The apertus installation is incomplete; reinstall it.',
      kind: 'operation',
      cause: error,
    });
  }
}

/** Render the unit file text for one service. */
export function renderSystemdUnit(options: SystemdUnitOptions): string {
  const unitName = systemdUnitName(options.service);
  const [program] = options.argv;
  if (program === undefined || !program.startsWith('/')) {
    throw new ApertusError(
      'service-invalid',
      `service ${options.service}: ExecStart needs an absolute program path`,
      {
        hint: 'Pass the full path of the program as the first argument.',
      },
    );
  }
  if (!options.workingDirectory.startsWith('/')) {
    throw new ApertusError(
      'service-invalid',
      `service ${options.service}: WorkingDirectory must be absolute`,
    );
  }
  refuseControlCharacters('WorkingDirectory', options.workingDirectory);
  if (options.user !== undefined && !/^[a-z_][a-z0-9_-]*$/i.test(options.user)) {
    throw new ApertusError(
      'service-invalid',
      `service ${options.service}: "${options.user}" is not a valid user name`,
    );
  }
  const description = options.description ?? `apertus service ${options.service}`;
  refuseControlCharacters('Description', description);

  const environment = Object.entries(options.environment ?? {})
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([key, value]) => {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
        throw new ApertusError('service-invalid', `"${key}" is not an environment variable name`);
      }
      return `Environment=${quoteSystemdArg(`${key}=${value}`)}`;
    })
    .join('\n');

  const requires = (options.requires ?? []).map(systemdUnitName);
  const absolute = (field: string, value: string) => {
    refuseControlCharacters(field, value);
    if (!value.startsWith('/') || /\s/.test(value)) {
      throw new ApertusError(
        'service-invalid',
        `service ${options.service}: ${field} "${value}" must be an absolute path without spaces`,
      );
    }
    return escapeExpansions(value);
  };
  const credentials = Object.entries(options.credentials ?? {}).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0,
  );
  for (const [name] of credentials) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
      throw new ApertusError('service-invalid', `"${name}" cannot name a systemd credential`);
    }
  }
  const credentialOf = new Map(credentials.map(([name, file]) => [file, name]));
  const values: Record<string, string> = {
    unitName,
    description: escapeExpansions(description),
    after: ['network.target', ...requires].join(' '),
    requires: requires.length > 0 ? `Requires=${requires.join(' ')}` : '',
    user: options.user === undefined ? '' : `User=${options.user}\nGroup=${options.user}`,
    workingDirectory: escapeExpansions(options.workingDirectory),
    environment,
    credentials: credentials
      .map(([name, file]) => `LoadCredential=${name}:${absolute('LoadCredential', file)}`)
      .join('\n'),
    // %d is the service's credentials directory: the one specifier passed on unescaped.
    execStart: options.argv
      .map((arg) => {
        const credential = credentialOf.get(arg);
        return credential === undefined ? quoteSystemdArg(arg) : `%d/${credential}`;
      })
      .join(' '),
    readWritePaths: (options.readWritePaths ?? [])
      .map((dir) => `ReadWritePaths=${absolute('ReadWritePaths', dir)}`)
      .join('\n'),
  };
  const template = options.template ?? readUnitTemplate(SYSTEMD_UNIT_TEMPLATE);
  const lines: string[] = [];
  for (const line of template.split('\n')) {
    // A line holding only a placeholder that renders empty is dropped, not left blank.
    const only = /^\{\{(\w+)\}\}$/.exec(line);
    if (only && values[only[1]!] === '') continue;
    lines.push(
      line.replace(/\{\{(\w+)\}\}/g, (_match, key: string) => {
        const value = values[key];
        if (value === undefined) {
          throw new ApertusError('template-invalid', `systemd unit template names unknown field {{${key}}}`, {
            kind: 'operation',
          });
        }
        return value;
      }),
    );
  }
  return lines.join('\n');
}
