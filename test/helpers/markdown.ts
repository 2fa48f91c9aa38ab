// Fenced code blocks of the project's Markdown pages, for the tests that run or check
// the documented commands (test/integration/docs-*.test.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

/** The info-string languages of a shell block (the ones that count as runnable or not). */
export const SHELL_LANGUAGES: ReadonlySet<string> = new Set(['sh', 'bash', 'shell', 'zsh', 'console']);

export interface FencedBlock {
  /** The page, relative to the repository root (`README.md`, `docs/deploy.md`). */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  /** The first word of the info string (`sh`, `yaml`, '' for none). */
  readonly lang: string;
  /** The words after the language: `runnable`, `timeout=120`, `needs=openssl,jq`. */
  readonly attributes: ReadonlyMap<string, string | true>;
  /** The block's text, without the fences (ends with a newline unless empty). */
  readonly body: string;
}

/**
 * Every fenced block (``` or ~~~, three or more) of a Markdown text. A fence indented by
 * up to three spaces counts, as in CommonMark; the closing fence is the same character,
 * at least as long, with no info string.
 */
export function fencedBlocks(markdown: string, file: string): FencedBlock[] {
  const blocks: FencedBlock[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^ {0,3}(`{3,}|~{3,})(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const fence = open[1]!;
    // As in CommonMark, the fence's own indentation is removed from the lines inside
    // (a block inside a list item reads as it would at the margin).
    const indent = lines[i]!.length - lines[i]!.trimStart().length;
    const unindent = (line: string) => line.replace(new RegExp(`^ {0,${indent}}`), '');
    const info = open[2]!.trim().split(/\s+/).filter(Boolean);
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[j]!);
      if (close && close[1]![0] === fence[0] && close[1]!.length >= fence.length) break;
      body.push(unindent(lines[j]!));
    }
    const attributes = new Map<string, string | true>();
    for (const word of info.slice(1)) {
      const eq = word.indexOf('=');
      if (eq < 0) attributes.set(word, true);
      else attributes.set(word.slice(0, eq), word.slice(eq + 1));
    }
    blocks.push({
      file,
      line: i + 1,
      lang: info[0] ?? '',
      attributes,
      body: body.length > 0 ? `${body.join('\n')}\n` : '',
    });
    i = j;
  }
  return blocks;
}

/** README.md and every Markdown page under docs/ (recursively), relative to `root`, sorted. */
export function docPages(root: string): string[] {
  const pages = ['README.md'];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.md')) pages.push(relative(root, path));
    }
  };
  walk(join(root, 'docs'));
  return pages.sort();
}

/** The fenced blocks of one page of the repository. */
export function pageBlocks(root: string, page: string): FencedBlock[] {
  return fencedBlocks(readFileSync(join(root, page), 'utf8'), page);
}
