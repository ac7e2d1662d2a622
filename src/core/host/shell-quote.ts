/** Quote one argument for POSIX sh: safe for any bytes but NUL. */
export function quoteArg(arg: string): string {
  if (arg.includes('\0')) throw new Error('a shell argument cannot contain a NUL byte');
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** Join a command and its arguments into one sh command line, each argument quoted. */
export function shellQuote(args: readonly string[]): string {
  return args.map(quoteArg).join(' ');
}
