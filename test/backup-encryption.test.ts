// Age encryption of backups at rest: parsing recipients and identity files, streaming round trips
// across the 64 KiB chunk boundaries, tampering and wrong keys, and interoperation in both
// directions with two independent age implementations: the age-encryption package and the age
// CLI (the promise that `age -d` restores a backup without this server). Without the CLI those
// tests skip locally and fail in CI, which installs it.
import { execFile, spawnSync } from 'node:child_process'
import { createCipheriv, hkdfSync, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { promisify } from 'node:util'
import {
  Decrypter,
  Encrypter,
  generateHybridIdentity,
  generateIdentity,
  identityToRecipient,
  type Recipient,
  Stanza,
} from 'age-encryption'
import t, { type Test } from 'tap'
import {
  decryptStream,
  encryptStream,
  parseIdentities,
  parseRecipients,
  readIdentityFile,
} from '../src/features/backups/encryption.js'

const run = promisify(execFile)
const VAR = 'BACKUP_AGE_RECIPIENTS'
const CHUNK = 64 * 1024
// Around every STREAM boundary, plus a multi-chunk random file.
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 5 * 1024 * 1024 + 123]

async function tempDir(t: Test) {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'steward-age-'))
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }))
  return dir
}

async function keyPair() {
  const identity = await generateIdentity()
  return { identity, recipient: await identityToRecipient(identity) }
}

// Feeds `data` in odd-sized pieces so chunks straddle the 64 KiB STREAM boundaries.
async function through(data: Buffer, ...stages: NodeJS.ReadWriteStream[]): Promise<Buffer> {
  const pieces: Buffer[] = []
  for (let i = 0; i < data.length; i += 7777) pieces.push(data.subarray(i, i + 7777))
  const out: Buffer[] = []
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      out.push(chunk)
      callback()
    },
  })
  await pipeline(Readable.from(pieces), ...(stages as [NodeJS.ReadWriteStream]), sink)
  return Buffer.concat(out)
}

// An age key file in age-keygen's layout, written with the library's keys.
function keyFile(identity: string, recipient: string) {
  return `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`
}

// Where the header ends: just past the "--- <mac>" line.
function headerLength(file: Buffer): number {
  return file.indexOf('\n', file.indexOf('\n---') + 1) + 1
}

// The size of an age file: header, payload nonce, plaintext, and a tag per chunk; an empty
// plaintext still has one (empty) chunk, and a whole number of chunks has no extra empty one.
function ageSize(header: number, plaintext: number) {
  return header + 16 + plaintext + 16 * Math.max(1, Math.ceil(plaintext / CHUNK))
}

// The error message of a decryption, or the plaintext when it works.
async function tryDecrypt(file: Buffer, identity: string): Promise<Buffer | string> {
  return through(file, decryptStream([identity])).catch((err: Error) => err.message)
}

function flip(file: Buffer, at: number): Buffer {
  const copy = Buffer.from(file)
  copy[at] = (copy[at] ?? 0) ^ 1
  return copy
}

t.test('recipients: one, several, comments, duplicates', async (t) => {
  const a = await keyPair()
  const b = await keyPair()
  t.same(parseRecipients(a.recipient, VAR), [a.recipient])
  t.same(parseRecipients(` ${a.recipient},${b.recipient} `, VAR), [a.recipient, b.recipient])
  t.same(parseRecipients(`${a.recipient}, ${b.recipient}\n${a.recipient}`, VAR), [a.recipient, b.recipient])
  const file = `# ops laptop\n${a.recipient}\n\n  # offline key in the safe\n${b.recipient}\r\n`
  t.same(parseRecipients(file, VAR), [a.recipient, b.recipient], 'an age recipients file works as is')
})

t.test('recipients: bad entries name the variable and the entry', async (t) => {
  const { identity, recipient } = await keyPair()
  // Same shape, wrong checksum: only a real bech32 decode catches it.
  const flipped = recipient.slice(0, -1) + (recipient.endsWith('q') ? 'p' : 'q')
  for (const bad of [flipped, 'age1xyz', 'ssh-ed25519', recipient.toUpperCase()]) {
    t.throws(
      () => parseRecipients(`${recipient}, ${bad}`, VAR),
      { message: `${VAR}: ${JSON.stringify(bad)} is not an age public key (age1…)` },
      bad,
    )
  }
  const pq = await identityToRecipient(await generateHybridIdentity())
  t.throws(() => parseRecipients(pq, VAR), /is not an age public key/, 'post-quantum recipients are refused')
  for (const empty of ['', '  \n', '# only a comment\n', ' , ,']) {
    t.throws(() => parseRecipients(empty, VAR), { message: /^BACKUP_AGE_RECIPIENTS: no age recipients/ })
  }
  const err = t.throws(() => parseRecipients(identity, VAR)) as Error
  t.match(err.message, /^BACKUP_AGE_RECIPIENTS: an entry is an age secret key/)
  t.notMatch(err.message, identity, 'the pasted secret key is not echoed')
})

t.test('identity files: keys, comments, and clear errors', async (t) => {
  const dir = await tempDir(t)
  const a = await keyPair()
  const b = await keyPair()
  const file = path.join(dir, 'keys.txt')
  await fs.writeFile(file, `${keyFile(a.identity, a.recipient)}\r\n${keyFile(b.identity, b.recipient)}`)
  t.same(await readIdentityFile(file), [a.identity, b.identity])

  await fs.writeFile(file, '# created: today\n\n')
  await t.rejects(readIdentityFile(file), {
    message: `age identity file ${file}: no age secret keys (AGE-SECRET-KEY-1…) found; create one with age-keygen -o`,
  })
  await t.rejects(readIdentityFile(path.join(dir, 'missing.txt')), { message: /missing\.txt: ENOENT/ })

  const broken = `${a.identity.slice(0, -1)}${a.identity.endsWith('Q') ? 'P' : 'Q'}`
  const err = t.throws(() => parseIdentities(`# key\n${broken}\n`, 'KEYS')) as Error
  t.equal(err.message, 'KEYS: line 2 is not an age secret key (AGE-SECRET-KEY-1…)')
  t.throws(() => parseIdentities(a.recipient, 'KEYS'), { message: /line 1 .*\(that is a public key\)$/ })

  // Post-quantum identities are keys too (no backup is encrypted to them, so they never match).
  const pq = await generateHybridIdentity()
  t.same(parseIdentities(pq, 'KEYS'), [pq], 'an AGE-SECRET-KEY-PQ-1… identity from age-encryption parses')
  const brokenPq = `${pq.slice(0, -1)}${pq.endsWith('Q') ? 'P' : 'Q'}`
  t.throws(() => parseIdentities(brokenPq, 'KEYS'), {
    message: 'KEYS: line 1 is not an age secret key (AGE-SECRET-KEY-1…)',
  })
  t.throws(
    () => parseIdentities(a.identity.toLowerCase(), 'KEYS'),
    /line 1 is not an age secret key/,
    'age keys are upper case',
  )
})

t.test('round trips across chunk boundaries', async (t) => {
  const { identity, recipient } = await keyPair()
  const stanza = '-> X25519 [A-Za-z0-9+/]{43}\n[A-Za-z0-9+/]{43}\n'
  for (const size of SIZES) {
    const plain = randomBytes(size)
    const sealed = await through(plain, encryptStream([recipient]))
    const header = sealed.subarray(0, headerLength(sealed)).toString('latin1')
    t.match(
      header,
      new RegExp(`^age-encryption\\.org/v1\n${stanza}--- [A-Za-z0-9+/]{43}\n$`),
      `${size}: header`,
    )
    t.equal(sealed.length, ageSize(header.length, size), `${size}: payload layout`)
    if (size > 16) t.equal(sealed.indexOf(plain.subarray(0, 16)), -1, `${size}: no plaintext visible`)
    t.ok((await through(sealed, decryptStream([identity]))).equals(plain), `${size}: bytes come back`)
  }
  const data = randomBytes(100_000)
  const both = await through(data, encryptStream([recipient]), decryptStream([identity]))
  t.ok(both.equals(data), 'encrypt and decrypt chained in one pipeline')
})

t.test('several recipients: any one identity decrypts', async (t) => {
  const a = await keyPair()
  const b = await keyPair()
  const c = await keyPair()
  const plain = randomBytes(70_000)
  const sealed = await through(plain, encryptStream([a.recipient, b.recipient, c.recipient]))
  t.equal(
    sealed.subarray(0, headerLength(sealed)).toString('latin1').split('-> X25519 ').length,
    4,
    'a stanza each',
  )
  t.ok((await through(sealed, decryptStream([b.identity]))).equals(plain))
  t.ok((await through(sealed, decryptStream([c.identity]))).equals(plain))
  t.ok((await through(sealed, decryptStream([(await keyPair()).identity, a.identity]))).equals(plain))
  // A post-quantum identity is accepted in an identity file and simply never matches.
  const pq = await generateHybridIdentity()
  t.ok((await through(sealed, decryptStream([pq, a.identity]))).equals(plain))
  t.match(await tryDecrypt(sealed, pq), /^age decryption failed: no identity matched/)
  t.throws(() => encryptStream([a.recipient.slice(0, -1)]), /is not an age public key/)
  t.throws(() => decryptStream([a.recipient]), /not an age secret key/)
})

t.test('the age-encryption package decrypts what we encrypt, and we decrypt what it encrypts', async (t) => {
  const { identity, recipient } = await keyPair()
  const other = await keyPair()
  const decrypter = new Decrypter()
  decrypter.addIdentity(identity)
  const encrypter = new Encrypter()
  encrypter.addRecipient(other.recipient)
  encrypter.addRecipient(recipient)
  for (const size of SIZES) {
    const plain = randomBytes(size)
    const ours = await through(plain, encryptStream([other.recipient, recipient]))
    t.ok(Buffer.from(await decrypter.decrypt(ours)).equals(plain), `${size}: the package reads ours`)
    const theirs = Buffer.from(await encrypter.encrypt(plain))
    t.ok((await through(theirs, decryptStream([identity]))).equals(plain), `${size}: we read the package's`)
  }
})

t.test('wrong key, tampering and truncation fail the pipeline', async (t) => {
  const { identity, recipient } = await keyPair()
  const plain = randomBytes(200_000)
  const sealed = await through(plain, encryptStream([recipient]))
  const other = (await keyPair()).identity
  await t.rejects(through(sealed, decryptStream([other])), {
    message: /^age decryption failed: no identity matched/,
  })
  const tampered = Buffer.from(sealed)
  tampered[tampered.length - 1000] = (tampered[tampered.length - 1000] ?? 0) ^ 1
  await t.rejects(through(tampered, decryptStream([identity])), { message: /^age decryption failed/ })
  // Cut at a chunk boundary (header + nonce + one sealed 64 KiB chunk): the last-chunk flag
  // is what catches this.
  const headerEnd = sealed.indexOf('\n', sealed.indexOf('---')) + 1
  const cut = sealed.subarray(0, headerEnd + 16 + 65536 + 16)
  await t.rejects(through(cut, decryptStream([identity])), { message: /^age decryption failed/ })
  await t.rejects(through(plain, decryptStream([identity])), { message: /^age decryption failed/ })
  t.throws(() => encryptStream([]), /no recipients/)
  t.throws(() => decryptStream([]), /no identities/)
})

t.test('tampering: header, payload, truncation, trailing data', async (t) => {
  const { identity, recipient } = await keyPair()
  const plain = randomBytes(2 * CHUNK)
  const sealed = await through(plain, encryptStream([recipient]))
  const end = headerLength(sealed)
  const macAt = sealed.indexOf('\n---') + 5
  const fails = (what: RegExp) => new RegExp(`^age decryption failed: .*${what.source}`)

  // The header: its MAC, the stanza, and anything added to it.
  const mac = Buffer.from(sealed)
  mac[macAt + 3] = mac[macAt + 3] === 0x41 ? 0x42 : 0x41 // another base64 letter, still canonical
  t.match(await tryDecrypt(mac, identity), fails(/invalid header MAC/), 'header MAC')
  const stanzaBody = sealed.indexOf('\n', sealed.indexOf('-> X25519')) + 5
  t.match(
    await tryDecrypt(flip(sealed, stanzaBody), identity),
    fails(/no identity matched|invalid/),
    'stanza body',
  )
  const extra = Buffer.concat([
    sealed.subarray(0, macAt - 5),
    Buffer.from('\n-> grease x\n\n'), // a stanza with an empty body
    sealed.subarray(macAt - 4),
  ])
  t.match(await tryDecrypt(extra, identity), fails(/invalid header MAC/), 'an added stanza')
  const crlf = Buffer.from(sealed.subarray(0, end).toString('latin1').replaceAll('\n', '\r\n'), 'latin1')
  t.match(
    await tryDecrypt(Buffer.concat([crlf, sealed.subarray(end)]), identity),
    fails(/not an age file|invalid/),
  )
  t.match(
    await tryDecrypt(Buffer.from('-----BEGIN AGE ENCRYPTED FILE-----\n'), identity),
    fails(/not an age file/),
  )
  t.match(await tryDecrypt(Buffer.alloc(0), identity), fails(/truncated or not an age file/), 'empty input')
  t.match(await tryDecrypt(sealed.subarray(0, end - 1), identity), fails(/truncated/), 'header cut short')
  t.match(
    await tryDecrypt(sealed.subarray(0, end + 16), identity),
    fails(/truncated/),
    'no payload after the nonce',
  )

  // The payload: the nonce, any byte of any chunk, and its tags.
  for (const at of [end, end + 16, end + 16 + CHUNK + 3, sealed.length - 17, sealed.length - 1]) {
    t.match(await tryDecrypt(flip(sealed, at), identity), fails(/failed to authenticate/), `byte ${at - end}`)
  }
  // Truncation: at the chunk boundary (the first chunk is intact, but not marked last), inside
  // a chunk, and one byte short.
  const boundary = sealed.subarray(0, end + 16 + CHUNK + 16)
  t.match(await tryDecrypt(boundary, identity), fails(/truncated \(the final payload chunk is missing\)/))
  t.match(
    await tryDecrypt(sealed.subarray(0, end + 16 + CHUNK + 100), identity),
    fails(/failed to authenticate/),
  )
  t.match(await tryDecrypt(sealed.subarray(0, -1), identity), fails(/failed to authenticate/))
  // Trailing data after a full final chunk (this file's), and after a short one.
  const trailing = Buffer.concat([sealed, Buffer.from('x')])
  t.match(await tryDecrypt(trailing, identity), fails(/trailing data after the end/))
  const short = await through(randomBytes(1000), encryptStream([recipient]))
  t.match(
    await tryDecrypt(Buffer.concat([short, randomBytes(40)]), identity),
    fails(/failed to authenticate/),
  )
  t.ok((await tryDecrypt(sealed, identity)) instanceof Buffer, 'the untouched file still decrypts')
})

// Captures the file key of a file the age-encryption package encrypts, and adds stanzas of other
// kinds with bodies of the given lengths (which our X25519 identities must skip).
class FileKeySpy implements Recipient {
  fileKey: Uint8Array = new Uint8Array()
  constructor(private readonly bodies: number[]) {}
  wrapFileKey(fileKey: Uint8Array) {
    this.fileKey = fileKey
    return this.bodies.map((length, i) => new Stanza([`steward.test/spy${i}`, 'x'], randomBytes(length)))
  }
}

// A payload sealed by hand, chunk by chunk, with any last-chunk flags: the STREAM rules.
function payload(fileKey: Uint8Array, chunks: Array<[Buffer, boolean]>): Buffer {
  const nonce = randomBytes(16)
  const key = Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32))
  const out = [nonce]
  for (const [index, [plain, last]] of chunks.entries()) {
    const counter = Buffer.alloc(12)
    counter.writeUIntBE(index, 5, 6)
    counter[11] = last ? 1 : 0
    const cipher = createCipheriv('chacha20-poly1305', key, counter, { authTagLength: 16 })
    out.push(cipher.update(plain), cipher.final(), cipher.getAuthTag())
  }
  return Buffer.concat(out)
}

t.test('STREAM rules: last-chunk flags and empty chunks', async (t) => {
  const dir = await tempDir(t)
  const { identity, recipient } = await keyPair()
  const spy = new FileKeySpy([0, 32, 48, 100])
  const encrypter = new Encrypter()
  encrypter.addRecipient(spy)
  encrypter.addRecipient(recipient)
  const empty = Buffer.from(await encrypter.encrypt(new Uint8Array()))
  const header = empty.subarray(0, headerLength(empty))
  t.match(header.toString('latin1'), /\n\n/, 'the header has an empty body line (a body of 0 or 48 bytes)')
  const full = randomBytes(CHUNK)
  const cases: Array<[string, Array<[Buffer, boolean]>, RegExp | null]> = [
    [
      'a full chunk and a short last one',
      [
        [full, false],
        [Buffer.from('tail'), true],
      ],
      null,
    ],
    ['one full last chunk', [[full, true]], null],
    ['an empty file', [[Buffer.alloc(0), true]], null],
    ['no chunk at all', [], /truncated/],
    [
      'the last flag on a non-final chunk',
      [
        [full, true],
        [Buffer.from('tail'), true],
      ],
      /trailing data/,
    ],
    [
      'no chunk marked last',
      [
        [full, false],
        [full, false],
      ],
      /truncated/,
    ],
    ['a short chunk that is not marked last', [[Buffer.from('tail'), false]], /failed to authenticate/],
    [
      'an empty last chunk after a full one',
      [
        [full, false],
        [Buffer.alloc(0), true],
      ],
      /empty final chunk/,
    ],
    [
      'a short chunk before the last one',
      [
        [Buffer.from('x'), false],
        [full, true],
      ],
      /failed to authenticate/,
    ],
  ]
  for (const [name, chunks, error] of cases) {
    const file = Buffer.concat([header, payload(spy.fileKey, chunks)])
    const result = await tryDecrypt(file, identity)
    if (error === null) t.same(result, Buffer.concat(chunks.map(([plain]) => plain)), name)
    else t.match(result, new RegExp(`^age decryption failed: .*${error.source}`), name)
    // The age CLI reads the spec the same way.
    if (hasAge) {
      const sealed = path.join(dir, 'crafted.age')
      await fs.writeFile(sealed, file)
      const keys = path.join(dir, 'key.txt')
      await fs.writeFile(keys, keyFile(identity, recipient))
      const cliOk = spawnSync('age', ['-d', '-i', keys, sealed]).status === 0
      t.equal(cliOk, error === null, `${name}: the age CLI agrees`)
    }
  }
})

t.test('backpressure: an unread stream stops taking input', async (t) => {
  const { identity, recipient } = await keyPair()
  const sealed = await through(randomBytes(4 * 1024 * 1024), encryptStream([recipient]))
  for (const [name, stream, input] of [
    ['encrypt', encryptStream([recipient]), randomBytes(4 * 1024 * 1024)],
    ['decrypt', decryptStream([identity]), sealed],
  ] as const) {
    let taken = 0
    while (taken < input.length && stream.write(input.subarray(taken, taken + 16384))) taken += 16384
    t.ok(taken < 512 * 1024, `${name}: took ${taken} bytes before asking to wait`)
    t.ok(
      stream.readableLength < 512 * 1024,
      `${name}: ${stream.readableLength} bytes buffered for the reader`,
    )
    stream.destroy()
  }
})

t.test('a failing source or consumer ends the pipeline without hanging', async (t) => {
  const { identity, recipient } = await keyPair()
  const sealed = await through(randomBytes(300_000), encryptStream([recipient]))
  const boom = new Error('pg_dump died')
  async function* dies(data: Buffer) {
    yield data.subarray(0, 100_000)
    throw boom
  }
  const sink = () => new Writable({ write: (_chunk, _encoding, callback) => callback() })
  await t.rejects(
    pipeline(Readable.from(dies(randomBytes(200_000))), encryptStream([recipient]), sink()),
    boom,
  )
  await t.rejects(pipeline(Readable.from(dies(sealed)), decryptStream([identity]), sink()), boom)
  // Failing before the header is even complete.
  await t.rejects(
    pipeline(Readable.from(dies(sealed.subarray(0, 10))), decryptStream([identity]), sink()),
    boom,
  )
  const full = new Writable({
    write: (_chunk, _encoding, callback) => callback(new Error('disk full')),
  })
  await t.rejects(pipeline(Readable.from([randomBytes(300_000)]), encryptStream([recipient]), full), {
    message: 'disk full',
  })
  const early = encryptStream([recipient])
  early.destroy()
  t.ok(early.destroyed, 'destroying an unused stream is fine')
})

// Whether the age CLI is here. Locally its tests skip without it; in CI they fail, since CI
// installs it and a silent skip there would hide a broken promise.
const hasAge = spawnSync('age', ['--version']).status === 0
const cli = { skip: hasAge || process.env.CI ? false : 'the age CLI is not installed (apt-get install age)' }

function ageCli(t: Test): boolean {
  if (!hasAge) t.fail('the age CLI is not installed; CI must install it (apt-get install age)')
  return hasAge
}

t.test('age CLI decrypts what we encrypt (key from the library)', cli, async (t) => {
  if (!ageCli(t)) return
  const dir = await tempDir(t)
  const { identity, recipient } = await keyPair()
  const keys = path.join(dir, 'key.txt')
  await fs.writeFile(keys, keyFile(identity, recipient), { mode: 0o600 })
  // A second key from age-keygen, so the several-recipients file is read with each key.
  const cliKeys = path.join(dir, 'cli-key.txt')
  await run('age-keygen', ['-o', cliKeys])
  const cliRecipient = (await run('age-keygen', ['-y', cliKeys])).stdout.trim()
  const several = parseRecipients(`${recipient}, ${cliRecipient}, ${(await keyPair()).recipient}`, VAR)
  for (const size of SIZES) {
    const plain = randomBytes(size)
    const sealed = path.join(dir, `${size}.age`)
    await fs.writeFile(sealed, await through(plain, encryptStream(parseRecipients(recipient, VAR))))
    // Read from stdout: age 1.1 creates an -o file only on the first byte written.
    const { stdout } = await run('age', ['-d', '-i', keys, sealed], {
      encoding: 'buffer',
      maxBuffer: 1 << 30,
    })
    t.ok(stdout.equals(plain), `${size} bytes`)
  }
  const plain = randomBytes(200_000)
  const sealed = path.join(dir, 'several.age')
  await fs.writeFile(sealed, await through(plain, encryptStream(several)))
  for (const key of [keys, cliKeys]) {
    const { stdout } = await run('age', ['-d', '-i', key, sealed], { encoding: 'buffer', maxBuffer: 1 << 30 })
    t.ok(stdout.equals(plain), `several recipients: ${path.basename(key)} decrypts`)
  }
})

t.test('we decrypt what the age CLI encrypts (key from age-keygen)', cli, async (t) => {
  if (!ageCli(t)) return
  const dir = await tempDir(t)
  const keys = path.join(dir, 'key.txt')
  await run('age-keygen', ['-o', keys])
  const recipient = (await run('age-keygen', ['-y', keys])).stdout.trim()
  t.same(parseRecipients(recipient, VAR), [recipient], 'age-keygen public keys parse')
  const identities = await readIdentityFile(keys)
  const other = await keyPair()
  for (const size of SIZES) {
    const plain = path.join(dir, `${size}.txt`)
    await fs.writeFile(plain, randomBytes(size))
    const sealed = path.join(dir, `${size}.age`)
    await run('age', ['-r', recipient, '-o', sealed, plain])
    const back = await through(await fs.readFile(sealed), decryptStream(identities))
    t.ok(back.equals(await fs.readFile(plain)), `${size} bytes`)
    // Several recipients, ours second; and the wrong key.
    await run('age', ['-r', other.recipient, '-r', recipient, '-o', sealed, plain])
    const file = await fs.readFile(sealed)
    t.ok(
      (await through(file, decryptStream(identities))).equals(await fs.readFile(plain)),
      `${size}: two recipients`,
    )
    t.match(await tryDecrypt(file, (await keyPair()).identity), /^age decryption failed: no identity matched/)
  }
})
