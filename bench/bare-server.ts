// Baselines served by a bare Fastify (run history: BENCH_PAGE_FILE, the same 50 runs Steward
// returned, replied from memory with no database, validation or response schema) or a bare node:http
// server (download: BENCH_FILE streamed with 1 MiB reads, what Steward uses). Listens on PORT.
import fs from 'node:fs'
import http from 'node:http'
import Fastify from 'fastify'

const port = Number(process.env.PORT)
if (process.env.BENCH_FILE) {
  const file = process.env.BENCH_FILE
  const size = fs.statSync(file).size
  const server = http.createServer((req, res) => {
    if (req.url === '/ready') return res.end('ready')
    res.writeHead(200, { 'content-length': size, 'content-type': 'application/octet-stream' })
    fs.createReadStream(file, { highWaterMark: 1 << 20 }).pipe(res)
  })
  server.listen(port, '127.0.0.1')
  process.once('SIGTERM', () => server.close(() => process.exit(0)))
} else {
  const page = JSON.parse(fs.readFileSync(String(process.env.BENCH_PAGE_FILE), 'utf8'))
  const app = Fastify()
  app.get('/runs', async () => page)
  app.get('/ready', async () => ({ status: 'ready' }))
  await app.listen({ port, host: '127.0.0.1' })
  process.once('SIGTERM', () => void app.close().then(() => process.exit(0)))
}
