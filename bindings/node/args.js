// The checks of the arguments that are JS's own, made before anything
// reaches the addon, so that a bad one fails with code 'INVALID_ARGUMENT'
// and a message naming the call and the argument:
//   describeTask: taskId: expected a string, got null
// Requests are checked by the converter in Rust (vodtask_client::json),
// field by field, in the same words: what is left here is what it cannot
// see, because it is not part of a message: the positional arguments (the
// converter takes `undefined` for "unset"), that an options bag is an
// object, a handler function, an AbortSignal, bytes, and the options of
// connect, open, subscribe and consume.
'use strict'

function invalidArgument(message) {
  const e = new Error(message)
  e.code = 'INVALID_ARGUMENT'
  return e
}

function typeOf(v) {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v
}

function fail(path, expected, v, got = typeOf(v)) {
  throw invalidArgument(`${path}: expected ${expected}, got ${got}`)
}

const string = (v, path) => typeof v === 'string' || fail(path, 'a string', v)
const integer = (expected, min, max) => (v, path) =>
  (Number.isInteger(v) && v >= min && v <= max) || fail(path, expected, v, typeof v === 'number' ? v : typeOf(v))
const int32 = integer('a 32-bit integer', -(2 ** 31), 2 ** 31 - 1)
const uint32 = integer('an integer in 0..4294967295', 0, 2 ** 32 - 1)
const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)
const object = (v, path) => isObject(v) || fail(path, 'an object', v)
// Its items are the converter's to check.
const array = (v, path) => Array.isArray(v) || fail(path, 'an array', v)
const bytes = (v, path) =>
  v instanceof Uint8Array || v instanceof ArrayBuffer || fail(path, 'a Uint8Array or Buffer', v)
const func = (v, path) => typeof v === 'function' || fail(path, 'a function', v)
const abortSignal = (v, path) =>
  (v != null && typeof v.aborted === 'boolean' && typeof v.addEventListener === 'function') ||
  fail(path, 'an AbortSignal', v)

/** `undefined` and `null` pass. */
const optional = (type) => (v, path) => v == null || type(v, path)

/**
 * An options bag whose fields, when given, are JS's own (not a message's):
 * they are named without the bag's name (`connect: apiKey: ...`).
 */
function bag(fields, { required = false } = {}) {
  return (v, path) => {
    if (v == null && !required) return
    object(v, path)
    for (const [k, type] of Object.entries(fields)) type(v[k], k)
  }
}

/** An options bag that is (part of) a request: the converter checks its fields. */
const request = bag({})

const ConnectOptions = bag(
  {
    apiKey: string,
    timeoutMs: optional(uint32),
    connectTimeoutMs: optional(uint32),
    caCert: optional((v, path) =>
      typeof v === 'string' || v instanceof Uint8Array || fail(path, 'a path, PEM text or a Buffer', v)),
  },
  { required: true },
)
const OpenOptions = bag({
  apiKey: optional(string),
  workers: optional(uint32),
  httpListen: optional(string),
  ffmpeg: optional(string),
  ffprobe: optional(string),
  sync: optional(string),
})

/** Node's `req.headers`, a fetch `Headers`, a Map or [name, value] pairs. */
const headers = (v, path) => {
  if (Array.isArray(v)) {
    v.forEach((pair, i) => (Array.isArray(pair) && pair.length === 2) || fail(`${path}[${i}]`, 'a [name, value] pair', pair))
  } else if (typeof v !== 'object' || v === null) {
    fail(path, 'an object, a Headers, a Map or [name, value] pairs', v)
  }
}

/** A webhook's raw body. */
const body = (v, path) =>
  typeof v === 'string' || v instanceof Uint8Array || v instanceof ArrayBuffer ||
  fail(path, 'a string, a Uint8Array or a Buffer', v)

// -------------------------------------------------------------- signatures
// Every call's parameters, in order.

const taskId = [['taskId', string]]
const signatures = {
  connect: [['url', string], ['options', ConnectOptions]],
  open: [['dataDir', string], ['options', OpenOptions]],
  verifyWebhook: [['secret', string], ['headers', headers], ['body', body]],
  uploadFile: [['path', string], ['options', request]],
  uploadBytes: [['bytes', bytes], ['fileName', string], ['options', request]],
  describeMedia: [['fileId', string]],
  createTask: [['spec', object], ['options', request]],
  describeTask: taskId,
  redoTask: taskId,
  cancelTask: taskId,
  waitTask: taskId,
  watchTask: taskId,
  listTasks: [['options', request]],
  listTasksPage: [['options', request]],
  taskOverview: [['options', request]],
  pullEvents: [['options', request]],
  confirmEvents: [['msgHandles', array]],
  extendEvents: [['msgHandles', array], ['seconds', int32]],
  nackEvents: [['msgHandles', array], ['delaySeconds', optional(int32)]],
  modifyEventConfig: [['changes', object]],
  deadLetterEvents: [['options', request]],
  redriveEvents: [['eventIds', optional(array)]],
  resendEvents: [['eventIds', array]],
  callbackAttempts: [['of', object]],
  rotateSigningSecret: [['options', request]],
  subscribe: [['options', bag({ maxInFlight: optional(int32) })]],
  consume: [
    ['handler', func],
    ['options', bag({ signal: optional(abortSignal), concurrency: optional(uint32), maxInFlight: optional(int32) })],
  ],
  close: [],
  eventConfig: [],
  eventsState: [],
  'subscription.next': [],
  'taskWatch.next': [],
  'delivery.ack': [],
  'delivery.nack': [['delaySeconds', optional(uint32)]],
  'delivery.extend': [['seconds', int32]],
}

/** Throws an INVALID_ARGUMENT Error for the first bad argument of call `name`. */
function checkArguments(name, args) {
  if (!signatures[name]) throw new Error(`args.js: no signature for call ${name}`)
  try {
    signatures[name].forEach(([param, type], i) => type(args[i], param))
  } catch (e) {
    throw e.code === 'INVALID_ARGUMENT' ? invalidArgument(`${name}: ${e.message}`) : e
  }
}

module.exports = { checkArguments, invalidArgument }
