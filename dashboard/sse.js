// Server-Sent Events read with fetch, so the token can go in a header (EventSource cannot send one).

function parseEvent(block) {
  let event = 'message'
  const data = []
  for (const line of block.split('\n')) {
    if (line.startsWith('event:')) event = line.slice(6).trim()
    else if (line.startsWith('data:')) data.push(line.slice(5).trimStart())
  }
  return { event, data: data.join('\n') }
}

/**
 * Reads the events of a response until it ends, calling onEvent(event, data) for each (comments,
 * such as `: ping`, are events without data). Returns when the stream ends; throws when it breaks
 * or the signal aborts. onEvent may return `false` to stop reading.
 */
export async function readEvents(res, onEvent) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) return
      buffer += value.replace(/\r\n/g, '\n')
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const { event, data } = parseEvent(buffer.slice(0, end))
        buffer = buffer.slice(end + 2)
        if ((await onEvent(event, data)) === false) return
      }
    }
  } finally {
    reader.cancel().catch(() => {})
  }
}
