// The package against a `vodtask serve --tls-cert --tls-key`: https:// with
// the test CA (made here with the openssl CLI) works; without it, the
// unknown issuer is named.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { vodtask, tempDir, startServer } from './helpers.mjs'

/** A test CA (EC P-256) and a server certificate it signed for localhost and 127.0.0.1. */
function makeCerts(dir) {
  const openssl = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
  openssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2',
    '-subj', '/CN=vodtask test CA',
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
  openssl('req', '-new', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost')
  fs.writeFileSync(path.join(dir, 'server.ext'),
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=critical,CA:FALSE\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key',
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', 'server.ext',
    '-out', 'server.pem')
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'server.pem'), key: path.join(dir, 'server.key') }
}

async function tlsServer(t) {
  const dir = tempDir(t)
  const certs = makeCerts(dir)
  const server = await startServer(t, path.join(dir, 'data'), [
    '--workers', '0', '--tls-cert', certs.cert, '--tls-key', certs.key,
  ])
  return { certs, server, url: server.grpc.replace('http://', 'https://') }
}

test('https:// with the CA as a path, PEM text or a Buffer', async (t) => {
  const { certs, server, url } = await tlsServer(t)
  for (const caCert of [certs.ca, fs.readFileSync(certs.ca, 'utf8'), fs.readFileSync(certs.ca)]) {
    const client = await vodtask.connect(url, { apiKey: server.key, caCert })
    const overview = await client.taskOverview()
    assert.equal(overview.total, 0)
  }
  // By name too, and file URLs are https://.
  const port = url.split(':').pop()
  const client = await vodtask.connect(`https://localhost:${port}`, { apiKey: server.key, caCert: certs.ca })
  const uploaded = await client.uploadBytes(Buffer.from('not media'), 'note.txt')
  assert.ok(uploaded.fileUrl.startsWith(`https://${server.http}/`), uploaded.fileUrl)
})

test('without the CA the unknown issuer is named', async (t) => {
  const { server, url } = await tlsServer(t)
  await assert.rejects(vodtask.connect(url, { apiKey: server.key }), (e) => {
    assert.equal(e.code, 'UNAVAILABLE')
    assert.match(e.message, /TLS handshake with .* failed: .*UnknownIssuer/)
    return true
  })
})

test('connect errors say what is wrong', async (t) => {
  const dir = tempDir(t)
  await assert.rejects(vodtask.connect('localhost:50051', { apiKey: 'k' }), (e) => {
    assert.equal(e.code, 'INVALID_ARGUMENT')
    assert.equal(e.message, 'url: must start with http:// or https://, got "localhost:50051"')
    return true
  })
  await assert.rejects(
    vodtask.connect('https://127.0.0.1:1', { apiKey: 'k', caCert: path.join(dir, 'nope.pem') }),
    (e) => {
      assert.equal(e.code, 'INVALID_ARGUMENT')
      assert.match(e.message, /^caCert: cannot read /)
      return true
    },
  )
  await assert.rejects(
    vodtask.connect('https://127.0.0.1:1', { apiKey: 'k', caCert: Buffer.from('not PEM') }),
    (e) => {
      assert.equal(e.code, 'INVALID_ARGUMENT')
      assert.match(e.message, /^caCert: no certificate/)
      return true
    },
  )
})
