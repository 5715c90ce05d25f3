// Text-scanning helpers the registry's analysers share. Each does what a regular expression did
// before, in time linear in its input where that expression was quadratic on a hostile file (the
// analysers read files of up to 2 MiB on the event loop, so a quadratic scan stalls the server).

/**
 * The text from the end of each `open` match to the next `close` character, as
 * `open([^c]*)c` with the g flag would capture it. That regex, once no `close` follows an opening,
 * retried every later opening against the rest of the text (quadratic); none of them can find a
 * `close` either, so this stops there. `open` must have the g flag and never match empty.
 */
export function closedSpans(text: string, open: RegExp, close: string): string[] {
  const spans: string[] = []
  open.lastIndex = 0
  for (let m = open.exec(text); m; m = open.exec(text)) {
    const end = text.indexOf(close, open.lastIndex)
    if (end < 0) break
    spans.push(text.slice(open.lastIndex, end))
    open.lastIndex = end + 1
  }
  return spans
}

/**
 * A line without its trailing comment, as `line.replace(/<marker>.*$/, '')` left it: `.` stops at
 * \r, U+2028 and U+2029 and `$` (no m flag) matches only at the end, so only a marker after the
 * last of those starts a comment. The regex tried each marker against the rest of the line.
 */
export function stripLineComment(line: string, marker: string): string {
  let from = 0
  for (const stop of ['\r', '\u2028', '\u2029']) from = Math.max(from, line.lastIndexOf(stop) + 1)
  const at = line.indexOf(marker, from)
  return at < 0 ? line : line.slice(0, at)
}
