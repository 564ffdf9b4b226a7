/**
 * Source positions for logged stack traces, decoded only when an error is logged.
 *
 * The image runs the bundle without `--enable-source-maps`: with the flag, Node reads every chunk's
 * map at load time and decodes a chunk's whole map the first time any stack with a frame in it is
 * formatted (amqplib formats one on every channel close), and keeps it: 10–30 MB per idle process
 * (bench/README.md, findings 15 and 17). Node 20 cannot switch maps on later for modules already
 * loaded, so the logger maps the frames of the stacks it writes itself: a frame in a bundle file
 * with a `<file>.map` beside it becomes the original file, line and column, as Node would print
 * it. Maps are dropped 30 s after their last use, so a process returns to its idle size.
 */
import { readFileSync } from "node:fs";
import { SourceMap } from "node:module";
import { fileURLToPath } from "node:url";

const KEEP_MS = 30_000;
const maps = new Map<string, SourceMap | null>();
let dropTimer: NodeJS.Timeout | undefined;

function mapOf(fileUrl: string): SourceMap | null {
  let map = maps.get(fileUrl);
  if (map !== undefined) return map;
  try {
    map = new SourceMap(JSON.parse(readFileSync(`${fileURLToPath(fileUrl)}.map`, "utf8")));
  } catch {
    map = null; // no map beside the file (or not readable): the frame stays as it is
  }
  maps.set(fileUrl, map);
  if (!dropTimer) {
    dropTimer = setTimeout(() => {
      maps.clear();
      dropTimer = undefined;
    }, KEEP_MS);
    dropTimer.unref();
  }
  return map;
}

const FRAME = /(file:\/\/\/[^\s()]+?\.[cm]?js):(\d+):(\d+)/g;

/** `stack` with each bundle frame replaced by its source position; unchanged when Node maps stacks itself. */
export function mapStack(stack: string): string {
  if (process.sourceMapsEnabled || !stack.includes("file:///")) return stack;
  return stack.replace(FRAME, (frame, file: string, line: string, column: string) => {
    const map = mapOf(file);
    if (!map) return frame;
    const entry = map.findEntry(Number(line) - 1, Number(column) - 1) as { originalSource?: string; originalLine?: number; originalColumn?: number };
    if (entry.originalSource === undefined || entry.originalLine === undefined || entry.originalColumn === undefined) return frame;
    const source = new URL(entry.originalSource, file).href;
    return `${source}:${entry.originalLine + 1}:${entry.originalColumn + 1}`;
  });
}
