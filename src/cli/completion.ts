// Shell completion for `xsm`, generated from the same command table the parser uses, so it cannot offer an
// option the parser would refuse. bash gets a completion function; zsh loads the same through bashcompinit.

import type { Command } from './command.ts';

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The bash function `_xsm` (and its `complete` line) for `commands`. */
export function bashCompletion(commands: Command[]): string {
  const firstWords = [...new Set(commands.map((c) => c.name.split(' ')[0]!))];
  const groups = new Map<string, string[]>();
  for (const c of commands) {
    const [head, ...rest] = c.name.split(' ');
    if (rest.length) groups.set(head!, [...(groups.get(head!) ?? []), rest.join(' ')]);
  }
  // Longest names first: `rebalance schedule` must win over `rebalance`.
  const byLength = [...commands].sort((a, b) => b.name.split(' ').length - a.name.split(' ').length);
  const lines = [
    '# bash completion for xsm: eval "$(xsm completion bash)", or save it in /etc/bash_completion.d/xsm',
    '_xsm() {',
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
    '  local before=" ${COMP_WORDS[*]:1:COMP_CWORD-1} "',
    '  local opts="" values="" files="" subs="" depth=0',
    '  COMPREPLY=()',
  ];
  let first = true;
  for (const c of byLength) {
    const words = c.name.split(' ');
    const options = Object.entries(c.options);
    const valueOpts = options.filter(([, o]) => o.type !== 'boolean');
    const cases = valueOpts.map(([n, o]) => {
      const names = [`--${n}`, ...(o.short ? [`-${o.short}`] : [])].join('|');
      if (o.type === 'choice') return `        ${names}) values=${q(o.choices.join(' '))} ;;`;
      // A value that names a file (PLAN.json, FILE) completes as a path; others take free text.
      return `        ${names}) values="${o.type !== 'boolean' && /json|file|path|device/i.test(o.value) ? '__files__' : '__none__'}" ;;`;
    });
    const fileArgs = c.positionals.some((p) => /FILE|OLD|NEW/.test(p.name)) ? '1' : '';
    // `rebalance` is a command and the head of `rebalance schedule`: offer the subcommand too.
    const subs = commands
      .filter((d) => d.name.startsWith(`${c.name} `) && d.name.split(' ').length === words.length + 1)
      .map((d) => d.name.split(' ').at(-1)!);
    lines.push(
      `  ${first ? 'if' : 'elif'} [[ "$before" == ${q(` ${c.name} `)}* ]]; then`,
      `    depth=${words.length}`,
      `    opts=${q([...options.map(([n]) => `--${n}`), '--json', '--help'].join(' '))}`,
      `    files=${q(fileArgs)}`,
      ...(subs.length ? [`    subs=${q(subs.join(' '))}`] : []),
      ...(cases.length ? ['    case "$prev" in', ...cases, '    esac'] : []),
    );
    first = false;
  }
  lines.push(
    '  fi',
    '  if [[ $depth -eq 0 ]]; then',
    '    if [[ $COMP_CWORD -eq 1 ]]; then',
    `      COMPREPLY=($(compgen -W ${q([...firstWords, 'help', '--version', '--help'].join(' '))} -- "$cur"))`,
    '    elif [[ $COMP_CWORD -eq 2 ]]; then',
    '      case "${COMP_WORDS[1]}" in',
    ...[...groups].map(([g, subs]) => `        ${g}) COMPREPLY=($(compgen -W ${q(subs.join(' '))} -- "$cur")) ;;`),
    '      esac',
    '    fi',
    '    return 0',
    '  fi',
    '  if [[ -n "$subs" && $COMP_CWORD -eq $((depth + 1)) && "$cur" != -* ]]; then',
    '    COMPREPLY=($(compgen -W "$subs" -- "$cur")); return 0',
    '  fi',
    '  if [[ "$values" == __files__ ]]; then COMPREPLY=($(compgen -f -- "$cur")); return 0; fi',
    '  if [[ "$values" == __none__ ]]; then return 0; fi',
    '  if [[ -n "$values" ]]; then COMPREPLY=($(compgen -W "$values" -- "$cur")); return 0; fi',
    '  if [[ "$cur" == -* || -z "$files" ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur")); return 0; fi',
    '  COMPREPLY=($(compgen -f -- "$cur"))',
    '}',
    'complete -o filenames -F _xsm xsm',
    '',
  );
  return lines.join('\n');
}

/** zsh: the bash function through zsh's bashcompinit, which every zsh since 4.3 ships. */
export function zshCompletion(commands: Command[]): string {
  return [
    '#compdef xsm',
    '# zsh completion for xsm: eval "$(xsm completion zsh)" in ~/.zshrc (after compinit)',
    'autoload -U +X bashcompinit && bashcompinit',
    bashCompletion(commands),
  ].join('\n');
}
