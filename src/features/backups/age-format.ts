// The age v1 file format (https://age-encryption.org/v1, also C2SP age) for X25519 recipients,
// composed from node:crypto primitives only: X25519, HKDF-SHA256, HMAC-SHA256 and
// ChaCha20-Poly1305 are OpenSSL's; this file only lays out the bytes the spec prescribes (bech32
// keys, header stanzas and MAC, the STREAM chunk nonces). encryption.ts turns it into Node streams.
// Its tests prove interoperation both ways with the age CLI and the age-encryption package.
import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto'

/** Plaintext bytes per payload chunk; every chunk but the last is exactly this long. */
export const CHUNK_SIZE = 64 * 1024
const TAG_SIZE = 16
/** Bytes of one full sealed payload chunk. */
export const SEALED_CHUNK_SIZE = CHUNK_SIZE + TAG_SIZE
/** Bytes of the random nonce that starts the payload, right after the header. */
export const PAYLOAD_NONCE_SIZE = 16
/** The fixed first line of every binary age v1 file, newline included. */
export const VERSION_LINE = 'age-encryption.org/v1\n'
// A header longer than this is refused rather than buffered (one X25519 stanza is ~100 bytes).
export const MAX_HEADER_SIZE = 1024 * 1024

const FILE_KEY_SIZE = 16
const X25519_INFO = 'age-encryption.org/v1/X25519'
const ZERO_NONCE = Buffer.alloc(12)
// DER prefixes around a raw 32-byte X25519 key: SubjectPublicKeyInfo and PKCS #8.
const SPKI_PREFIX = Buffer.from('302a300506032b656e032100', 'hex')
const PKCS8_PREFIX = Buffer.from('302e020100300506032b656e04220420', 'hex')

interface Stanza {
  args: string[]
  body: Buffer
}

export interface Identity {
  privateKey: KeyObject
  publicKey: Buffer
}

/** A payload key and the chunk counter: seals or opens the STREAM chunks in order. */
export class PayloadCipher {
  readonly #key: Buffer
  readonly #nonce = Buffer.alloc(12)
  #counter = 0

  constructor(fileKey: Buffer, payloadNonce: Buffer) {
    this.#key = hkdf(fileKey, payloadNonce, 'payload')
  }

  /** The index of the next chunk; 0 until one has been sealed or opened. */
  get counter(): number {
    return this.#counter
  }

  /** Seals the next chunk; returns the ciphertext and its tag, to be written in that order. */
  seal(plaintext: Buffer, last: boolean): [Buffer, Buffer] {
    const cipher = createCipheriv('chacha20-poly1305', this.#key, this.#next(last), {
      authTagLength: TAG_SIZE,
    })
    const sealed = cipher.update(plaintext)
    cipher.final()
    this.#counter++
    return [sealed, cipher.getAuthTag()]
  }

  /** Opens the next chunk, or returns null (and stays at this chunk) when it does not authenticate. */
  open(sealed: Buffer, last: boolean): Buffer | null {
    if (sealed.length < TAG_SIZE) return null
    const plaintext = openAead(this.#key, this.#next(last), sealed)
    if (plaintext !== null) this.#counter++
    return plaintext
  }

  // The nonce is the 11-byte big-endian chunk counter and the last-chunk flag. Six counter bytes
  // are plenty (2^48 chunks of 64 KiB); the five above them stay zero.
  #next(last: boolean): Buffer {
    this.#nonce.writeUIntBE(this.#counter, 5, 6)
    this.#nonce[11] = last ? 1 : 0
    return this.#nonce
  }
}

/** Decodes an `age1…` recipient into its X25519 public key; throws when it is not one. */
export function decodeRecipient(recipient: string): Buffer {
  const key = bech32Decode(recipient)
  if (key?.prefix !== 'age' || key.bytes.length !== 32) throw new Error('invalid age X25519 recipient')
  return key.bytes
}

/** Decodes an `AGE-SECRET-KEY-1…` identity, or returns null when it is not an X25519 identity. */
export function decodeIdentity(identity: string): Identity | null {
  const key = bech32Decode(identity)
  if (key?.prefix !== 'AGE-SECRET-KEY-' || key.bytes.length !== 32) return null
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, key.bytes]),
    format: 'der',
    type: 'pkcs8',
  })
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}

/** Whether `identity` is an age native identity: X25519 (`AGE-SECRET-KEY-1…`) or post-quantum
 * hybrid (`AGE-SECRET-KEY-PQ-1…`, a 32-byte seed), with a valid bech32 checksum. */
export function isIdentity(identity: string): boolean {
  if (decodeIdentity(identity)) return true
  const key = bech32Decode(identity)
  return key?.prefix === 'AGE-SECRET-KEY-PQ-' && key.bytes.length === 32
}

/** A new random file key and the header (MAC line included) that wraps it for `recipients`. */
export function newHeader(recipients: Buffer[]): { fileKey: Buffer; header: Buffer } {
  const fileKey = randomBytes(FILE_KEY_SIZE)
  let text = VERSION_LINE
  for (const recipient of recipients) {
    const { args, body } = wrapFileKey(fileKey, recipient)
    text += `-> ${args.join(' ')}\n`
    // Wrapped at 64 columns; the final line is shorter, and empty when the rest fills its line.
    const encoded = base64(body)
    for (let at = 0; ; at += 64) {
      const line = encoded.slice(at, at + 64)
      text += `${line}\n`
      if (line.length < 64) break
    }
  }
  text += '---'
  const mac = headerMac(fileKey, Buffer.from(text, 'latin1'))
  return { fileKey, header: Buffer.from(`${text} ${base64(mac)}\n`, 'latin1') }
}

/**
 * Where the header ends in `bytes` (the offset just past the MAC line's newline), or -1 when
 * it has not arrived yet. The MAC line is the first line that starts with "---": stanza lines
 * start with "-> " and base64 has no '-'. Searching from `from` keeps repeated calls linear.
 */
export function headerEnd(bytes: Buffer, from: number): number {
  const dashes = bytes.indexOf('\n---', Math.max(0, from - 3))
  if (dashes === -1) return -1
  const newline = bytes.indexOf(0x0a, dashes + 4)
  return newline === -1 ? -1 : newline + 1
}

/**
 * Parses a complete header (as delimited by {@link headerEnd}), unwraps the file key with the
 * first identity that opens an X25519 stanza, and checks the header MAC with it. Throws on a
 * malformed header, when no identity matches, and when the MAC is wrong.
 */
export function openHeader(header: Buffer, identities: Identity[]): Buffer {
  const lines = header.toString('latin1').split('\n')
  lines.pop() // the header ends with a newline
  if (lines[0] !== VERSION_LINE.slice(0, -1))
    throw new Error('not an age file (no age-encryption.org/v1 header)')
  const stanzas: Stanza[] = []
  let index = 1
  while (lines[index]?.startsWith('-> ')) {
    const args = (lines[index++] as string).slice(3).split(' ')
    if (!args.every((arg) => /^[\x21-\x7e]+$/.test(arg))) throw new Error('invalid header: malformed stanza')
    const body: Buffer[] = []
    for (;;) {
      const line = lines[index++]
      const bytes = line === undefined || line.length > 64 ? null : unbase64(line)
      if (bytes === null) throw new Error('invalid header: malformed stanza body')
      body.push(bytes)
      if (line?.length !== 64) break
    }
    stanzas.push({ args, body: Buffer.concat(body) })
  }
  const encodedMac = /^--- ([A-Za-z0-9+/]{43})$/.exec(lines[index] ?? '')?.[1]
  const mac = encodedMac === undefined ? null : unbase64(encodedMac)
  if (mac === null || encodedMac === undefined || index !== lines.length - 1)
    throw new Error('invalid header')

  const fileKey = unwrapFileKey(stanzas, identities)
  if (fileKey === null) throw new Error("no identity matched any of the file's recipients")
  // The MAC covers the header up to and including "---", not the space after it.
  const expected = headerMac(fileKey, header.subarray(0, header.length - encodedMac.length - 2))
  if (!timingSafeEqual(expected, mac)) throw new Error('invalid header MAC')
  return fileKey
}

function wrapFileKey(fileKey: Buffer, recipient: Buffer): Stanza {
  const ephemeral = generateKeyPairSync('x25519')
  const share = rawPublicKey(ephemeral.publicKey)
  // OpenSSL refuses an all-zero shared secret (a low-order recipient key), as the spec requires.
  const secret = diffieHellman({ privateKey: ephemeral.privateKey, publicKey: publicKey(recipient) })
  const key = hkdf(secret, Buffer.concat([share, recipient]), X25519_INFO)
  const cipher = createCipheriv('chacha20-poly1305', key, ZERO_NONCE, { authTagLength: TAG_SIZE })
  const body = Buffer.concat([cipher.update(fileKey), cipher.final(), cipher.getAuthTag()])
  return { args: ['X25519', base64(share)], body }
}

function unwrapFileKey(stanzas: Stanza[], identities: Identity[]): Buffer | null {
  for (const identity of identities) {
    for (const { args, body } of stanzas) {
      if (args[0] !== 'X25519') continue
      const share = args.length === 2 ? unbase64(args[1] as string) : null
      if (share?.length !== 32 || body.length !== FILE_KEY_SIZE + TAG_SIZE) {
        throw new Error('invalid X25519 stanza')
      }
      let secret: Buffer
      try {
        secret = diffieHellman({ privateKey: identity.privateKey, publicKey: publicKey(share) })
      } catch {
        throw new Error('invalid X25519 stanza (low-order share)')
      }
      const key = hkdf(secret, Buffer.concat([share, identity.publicKey]), X25519_INFO)
      const fileKey = openAead(key, ZERO_NONCE, body)
      if (fileKey !== null) return fileKey
    }
  }
  return null
}

function openAead(key: Buffer, nonce: Buffer, sealed: Buffer): Buffer | null {
  const decipher = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: TAG_SIZE })
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE))
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE))
  try {
    decipher.final()
  } catch {
    return null
  }
  return plaintext
}

function headerMac(fileKey: Buffer, headerUpToDashes: Buffer): Buffer {
  return createHmac('sha256', hkdf(fileKey, Buffer.alloc(0), 'header'))
    .update(headerUpToDashes)
    .digest()
}

function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, 32))
}

function publicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' })
}

function rawPublicKey(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length)
}

function base64(bytes: Buffer): string {
  return bytes.toString('base64').replace(/=+$/, '')
}

// Strict, as the spec asks: standard alphabet, no padding, and canonical (Node's own decoder
// skips junk and ignores stray bits, so the round trip is what rejects those).
function unbase64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) return null
  const bytes = Buffer.from(text, 'base64')
  return base64(bytes) === text ? bytes : null
}

// Bech32 (BIP 173) as age uses it: checksummed, all upper or all lower case, no length limit.
const BECH32 = 'qpzry9x8gf2tvdw0s3jn54khce6mua7l'

function bech32Decode(text: string): { prefix: string; bytes: Buffer } | null {
  if (text !== text.toLowerCase() && text !== text.toUpperCase()) return null
  const lower = text.toLowerCase()
  const separator = lower.lastIndexOf('1')
  if (separator < 1 || lower.length - separator - 1 < 6) return null
  const prefix = lower.slice(0, separator)
  const data: number[] = []
  for (const char of lower.slice(separator + 1)) {
    const value = BECH32.indexOf(char)
    if (value === -1) return null
    data.push(value)
  }
  const expanded = [...prefix].map((c) => c.charCodeAt(0))
  if (expanded.some((code) => code < 33 || code > 126)) return null
  const checked = [...expanded.map((c) => c >> 5), 0, ...expanded.map((c) => c & 31), ...data]
  if (polymod(checked) !== 1) return null
  // Regroup the 5-bit values (checksum excluded) into bytes; leftover bits must be zero padding.
  const bytes: number[] = []
  let accumulator = 0
  let bits = 0
  for (const value of data.slice(0, -6)) {
    accumulator = ((accumulator << 5) | value) & 0xfff
    bits += 5
    if (bits >= 8) {
      bits -= 8
      bytes.push((accumulator >> bits) & 0xff)
    }
  }
  if (bits >= 5 || (accumulator & ((1 << bits) - 1)) !== 0) return null
  return { prefix: text.slice(0, separator), bytes: Buffer.from(bytes) }
}

function polymod(values: number[]): number {
  const generator = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3]
  let check = 1
  for (const value of values) {
    const top = check >>> 25
    check = ((check & 0x1ffffff) << 5) ^ value
    for (let i = 0; i < 5; i++) if ((top >>> i) & 1) check ^= generator[i] as number
  }
  return check
}
