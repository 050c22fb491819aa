/**
 * Just enough Markdown reading for the documentation tests: fenced code
 * blocks, heading anchors as GitHub derives them, and the inline links of the
 * prose (not of code).
 */

/** A fenced code block: its info string, its lines, and the 1-based line of its opening fence. */
export interface FencedBlock {
  info: string;
  lines: string[];
  line: number;
}

/** A link written as `[text](target)` outside code, with the 1-based line it is on. */
export interface MarkdownLink {
  target: string;
  line: number;
}

const FENCE = /^(\s*)(`{3,}|~{3,})(.*)$/;

/** Splits a document into prose lines (code lines blanked, so line numbers hold) and fenced blocks. */
function split(text: string): { prose: string[]; blocks: FencedBlock[] } {
  const prose: string[] = [];
  const blocks: FencedBlock[] = [];
  let open: { marker: string; block: FencedBlock } | undefined;
  text.split('\n').forEach((raw, i) => {
    const fence = FENCE.exec(raw);
    if (open) {
      prose.push('');
      const closing = fence?.[2];
      if (closing?.startsWith(open.marker) && fence?.[3]?.trim() === '') open = undefined;
      else open.block.lines.push(raw);
      return;
    }
    if (fence) {
      prose.push('');
      const block = { info: fence[3]!.trim(), lines: [], line: i + 1 };
      blocks.push(block);
      open = { marker: fence[2]!, block };
      return;
    }
    prose.push(raw);
  });
  return { prose, blocks };
}

/** The fenced code blocks of a document, in order. */
export function fencedBlocks(text: string): FencedBlock[] {
  return split(text).blocks;
}

/** Removes inline code spans, so links and markup inside them are not read. */
function withoutCodeSpans(line: string): string {
  return line.replace(/(`+)[^`]*?\1/g, '');
}

/** GitHub's anchor for a heading text: lower case, punctuation dropped, spaces to hyphens. */
export function headingSlug(heading: string): string {
  const text = heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1') // a link keeps its text
    .replace(/<[^>]+>/g, '');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** Every anchor a document's headings define (repeated headings get -1, -2, ... as on GitHub). */
export function headingAnchors(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of split(text).prose) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const slug = headingSlug(m[1]!);
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** The inline links of a document's prose, outside code blocks and code spans. */
export function markdownLinks(text: string): MarkdownLink[] {
  const links: MarkdownLink[] = [];
  split(text).prose.forEach((line, i) => {
    for (const m of withoutCodeSpans(line).matchAll(/\[[^\]]*\]\(\s*<?([^)\s>]+)>?[^)]*\)/g)) {
      links.push({ target: m[1]!, line: i + 1 });
    }
  });
  return links;
}
