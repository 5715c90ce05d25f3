// Age encryption of backup files at rest, as Node streams, so a multi-GB pg_dump can be piped
// through without ever being held in memory.
//
// Rules this file keeps:
// - Standalone: plain arguments in, plain values out, nothing from the rest of src/ (its format
//   half, age-format.ts, is its own).
// - No cryptographic primitives of its own. X25519, HKDF-SHA256, HMAC-SHA256, ChaCha20-Poly1305
//   and the random bytes all come from node:crypto (OpenSSL); age-format.ts only composes them
//   exactly as the age v1 spec lays out (header stanzas and MAC, the 64 KiB STREAM payload).
//   That encrypts about ten times faster than the pure-JS age-encryption package did (~800 vs
//   ~75 MiB/s) and keeps the event loop free: a 64 KiB chunk seals in well under a millisecond.
//   Interoperation is proven by the tests, both ways, against the age CLI and against
//   age-encryption. Keys are checked here too (bech32 checksum, prefix, length), as that library
//   checks them; it is a test dependency only, which keeps its ~6 MiB of modules out of the server.
// - Output is the standard binary age format, so `age -d -i key.txt` can always restore a backup
//   without this server; recipients are X25519 `age1…` keys, which every age release reads.
// - Secret keys never appear in error messages: identity file errors name the file and line,
//   and a secret key pasted where a recipient belongs is reported without echoing it.
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { type Duplex, Transform, type TransformCallback } from 'node:stream'
import {
  CHUNK_SIZE,
  decodeIdentity,
  decodeRecipient,
  headerEnd,
  type Identity,
  isIdentity,
  MAX_HEADER_SIZE,
  newHeader,
  openHeader,
  PAYLOAD_NONCE_SIZE,
  PayloadCipher,
  SEALED_CHUNK_SIZE,
  VERSION_LINE,
} from './age-format.js'

// An X25519 recipient is bech32 with the human-readable part "age". The separator is the last
// '1' and the data alphabet has no '1', so exactly one '1' means the part before it is "age";
// age1pq1…/age1tag1… (post-quantum and tag recipients) have another part and are not accepted.
const X25519_RECIPIENT = /^age1[^1]+$/
const SECRET_KEY = /^AGE-SECRET-KEY-/i

/**
 * Parses a list of age X25519 public keys (`age1…`) separated by commas, whitespace or newlines.
 * Lines starting with '#' are comments, so the contents of an age recipients file work as is.
 * Throws an Error naming `variable` and the bad entry when an entry is not a valid key, or when
 * there is none. Duplicates are dropped (each would only add the same header stanza again).
 */
export function parseRecipients(text: string, variable: string): string[] {
  const entries = meaningfulLines(text)
    .flatMap((line) => line.split(/[\s,]+/))
    .filter((entry) => entry !== '')
  if (entries.length === 0) {
    throw new Error(`${variable}: no age recipients given; expected age1… public keys`)
  }
  const recipients: string[] = []
  for (const entry of entries) {
    if (SECRET_KEY.test(entry)) {
      throw new Error(
        `${variable}: an entry is an age secret key (AGE-SECRET-KEY-1…), not a public key; ` +
          'give its public key (age-keygen -y keyfile) and keep the secret key off this server',
      )
    }
    if (!X25519_RECIPIENT.test(entry) || !succeeds(() => decodeRecipient(entry))) {
      throw new Error(`${variable}: ${show(entry)} is not an age public key (age1…)`)
    }
    if (!recipients.includes(entry)) recipients.push(entry)
  }
  return recipients
}

/**
 * Reads an age identity file as written by `age-keygen -o file`: one `AGE-SECRET-KEY-1…` per
 * line, '#' comments and blank lines ignored. Throws when the file is unreadable, when a line is
 * not an identity, or when there is none.
 */
export async function readIdentityFile(path: string): Promise<string[]> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new Error(`age identity file ${path}: ${(err as Error).message}`, { cause: err })
  }
  return parseIdentities(text, `age identity file ${path}`)
}

/** The parsing half of {@link readIdentityFile}; `source` names the text in error messages. */
export function parseIdentities(text: string, source: string): string[] {
  const identities: string[] = []
  for (const [index, raw] of text.split('\n').entries()) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#')) continue
    // The library parses both native identity kinds; decrypting with either is harmless.
    if (!SECRET_KEY.test(line) || !isIdentity(line)) {
      const hint = line.startsWith('age1') ? ' (that is a public key)' : ''
      throw new Error(`${source}: line ${index + 1} is not an age secret key (AGE-SECRET-KEY-1…)${hint}`)
    }
    identities.push(line)
  }
  if (identities.length === 0) {
    throw new Error(`${source}: no age secret keys (AGE-SECRET-KEY-1…) found; create one with age-keygen -o`)
  }
  return identities
}

/**
 * A Duplex that takes plaintext and emits the binary age file for `recipients` (already parsed).
 * Memory stays constant: the payload is sealed in 64 KiB chunks as data flows, with backpressure.
 * Usable in `pipeline(createReadStream(src), encryptStream(r), createWriteStream(dst))`.
 */
export function encryptStream(recipients: string[]): Duplex {
  if (recipients.length === 0) throw new Error('age encryption: no recipients given')
  const keys = recipients.map((recipient) => {
    try {
      return decodeRecipient(recipient)
    } catch {
      throw new Error(`age encryption: ${show(recipient)} is not an age public key (age1…)`)
    }
  })
  const { fileKey, header } = newHeader(keys)
  const nonce = randomBytes(PAYLOAD_NONCE_SIZE)
  const payload = new PayloadCipher(fileKey, nonce)
  const seal = (plaintext: Buffer, last: boolean) => {
    for (const piece of payload.seal(plaintext, last)) stream.push(piece)
  }
  const chunks = new Chunker(CHUNK_SIZE, (chunk) => seal(chunk, false))
  const stream = new Transform({
    transform(data: Buffer, _encoding, callback) {
      settle(callback, 'age encryption failed', () => chunks.write(data))
    },
    // The held-back chunk is the final one: full when the input filled it exactly, short
    // otherwise, and empty only when the whole input was.
    flush(callback) {
      settle(callback, 'age encryption failed', () => seal(chunks.rest(), true))
    },
  })
  stream.push(Buffer.concat([header, nonce]))
  return stream
}

/**
 * A Duplex that takes a binary age file and emits its plaintext. Fails (as a stream error) when
 * no identity matches, the header MAC is wrong, or any chunk is tampered with or truncated; the
 * plaintext of chunks before a bad one has already been emitted, as with the age CLI, so restore
 * into a temporary file and use it only once the pipeline has resolved.
 */
export function decryptStream(identities: string[]): Duplex {
  if (identities.length === 0) throw new Error('age decryption: no identities given')
  const keys: Identity[] = []
  for (const identity of identities) {
    const key = decodeIdentity(identity)
    if (key) keys.push(key)
    // Post-quantum identities (AGE-SECRET-KEY-PQ-1…) pass parseIdentities, but no backup has
    // their stanzas (parseRecipients refuses age1pq1… keys), so they simply never match.
    else if (!isIdentity(identity)) {
      throw new Error('age decryption: an identity is not an age secret key (AGE-SECRET-KEY-1…)')
    }
  }

  // Before the payload: the header and payload nonce, gathered in a buffer that doubles as needed.
  let prelude: Buffer | null = Buffer.allocUnsafe(4096)
  let preludeLength = 0
  let payload: PayloadCipher | null = null
  const chunks = new Chunker(SEALED_CHUNK_SIZE, (chunk) => {
    // More data follows this chunk, so it must open as a non-final one.
    stream.push(payload?.open(chunk, false) ?? refuse(chunk))
  })

  // Why a non-final chunk does not open: it is really the final one (so data follows the end),
  // or it has been corrupted.
  function refuse(chunk: Buffer): never {
    if (payload?.open(chunk, true)) throw new Error('trailing data after the end of the encrypted file')
    throw new Error('a payload chunk failed to authenticate (corrupted or tampered with)')
  }

  function readPrelude(data: Buffer): Buffer | null {
    if (!prelude) return data
    if (preludeLength + data.length > prelude.length) {
      const grown = Buffer.allocUnsafe(Math.max(2 * prelude.length, preludeLength + data.length))
      prelude.copy(grown, 0, 0, preludeLength)
      prelude = grown
    }
    const scanned = preludeLength
    preludeLength += data.copy(prelude, preludeLength)
    const bytes = prelude.subarray(0, preludeLength)
    const start = Math.min(preludeLength, VERSION_LINE.length)
    if (!bytes.subarray(0, start).equals(Buffer.from(VERSION_LINE).subarray(0, start))) {
      throw new Error('not an age file (no age-encryption.org/v1 header)')
    }
    const end = headerEnd(bytes, scanned)
    if (end === -1) {
      if (preludeLength > MAX_HEADER_SIZE) throw new Error('invalid header (too long)')
      return null
    }
    if (preludeLength < end + PAYLOAD_NONCE_SIZE) return null
    const fileKey = openHeader(bytes.subarray(0, end), keys)
    payload = new PayloadCipher(fileKey, bytes.subarray(end, end + PAYLOAD_NONCE_SIZE))
    prelude = null
    return bytes.subarray(end + PAYLOAD_NONCE_SIZE)
  }

  const stream = new Transform({
    transform(data: Buffer, _encoding, callback) {
      settle(callback, 'age decryption failed', () => {
        const rest = readPrelude(data)
        if (rest) chunks.write(rest)
      })
    },
    flush(callback) {
      settle(callback, 'age decryption failed', () => {
        if (!payload) throw new Error('file is truncated or not an age file (incomplete header)')
        const last = chunks.rest()
        if (last.length === 0) throw new Error('file is truncated (the final payload chunk is missing)')
        const plaintext = payload.open(last, true)
        if (plaintext === null) {
          const cut = last.length === SEALED_CHUNK_SIZE && payload.open(last, false) !== null
          throw new Error(
            cut
              ? 'file is truncated (the final payload chunk is missing)'
              : 'the final payload chunk failed to authenticate (corrupted, tampered with or truncated)',
          )
        }
        // Only an empty file has an empty final chunk (spec; age rejects it too).
        if (plaintext.length === 0 && payload.counter > 1)
          throw new Error('invalid payload (empty final chunk)')
        stream.push(plaintext)
      })
    },
  })
  return stream
}

// Splits a byte stream into `size`-byte chunks for `handle`, always holding the latest chunk back
// until more bytes arrive, so that at the end rest() is the final chunk: full when the input was
// a whole number of chunks, short otherwise, empty only for empty input. Each byte is copied at
// most once (chunks are cut straight from large writes), never concatenated.
class Chunker {
  readonly #held: Buffer
  #fill = 0

  constructor(
    private readonly size: number,
    private readonly handle: (chunk: Buffer) => void,
  ) {
    this.#held = Buffer.allocUnsafe(size)
  }

  write(data: Buffer): void {
    let at = 0
    while (at < data.length) {
      if (this.#fill === this.size) {
        this.handle(this.#held)
        this.#fill = 0
      }
      if (this.#fill === 0 && data.length - at > this.size) {
        this.handle(data.subarray(at, at + this.size))
        at += this.size
        continue
      }
      const copied = data.copy(this.#held, this.#fill, at, at + this.size - this.#fill)
      this.#fill += copied
      at += copied
    }
  }

  rest(): Buffer {
    return this.#held.subarray(0, this.#fill)
  }
}

// Runs one synchronous step of a Transform and reports its error once, as `failure: …`.
function settle(callback: TransformCallback, failure: string, step: () => void): void {
  try {
    step()
  } catch (err) {
    callback(new Error(`${failure}: ${(err as Error).message}`, { cause: err }))
    return
  }
  callback()
}

function meaningfulLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
}

// A recipient is valid when it decodes: bech32 checksum, prefix and key length.
function succeeds(attempt: () => void): boolean {
  try {
    attempt()
    return true
  } catch {
    return false
  }
}

function show(entry: string): string {
  return JSON.stringify(entry.length > 80 ? `${entry.slice(0, 77)}…` : entry)
}
