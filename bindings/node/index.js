// The Node package `vodtask`: the native binding (vodtask.node, built from
// src/*.rs over the Rust crate vodtask-client) in JS clothes: errors with a
// gRPC `code`, an async iterator for subscriptions, an AbortSignal for
// consume, Dates for time ranges, arguments checked first (args.js). No
// logic of its own.
'use strict'

const native = require('./vodtask.node')
const { checkArguments, invalidArgument } = require('./args')

const CODED = /^([A-Z_]+): ([\s\S]*)$/

// The codes napi-rs gives the errors of its own argument conversion. args.js
// refuses such arguments first; this maps whatever it would miss.
const NAPI_ARGUMENT_CODES = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected', 'NumberExpected',
  'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected', 'ArrayBufferExpected',
])

/**
 * The native layer sends `"<GRPC_CODE>: <message>"`; make it an Error with
 * `code`. napi-rs's argument errors become INVALID_ARGUMENT.
 */
function coded(e, name) {
  if (e instanceof Error && typeof e.message === 'string') {
    const m = CODED.exec(e.message)
    if (m) {
      const err = new Error(m[2])
      err.code = m[1]
      return err
    }
    if (NAPI_ARGUMENT_CODES.has(e.code)) return invalidArgument(`${name}: ${e.message}`)
  }
  return e
}

/**
 * An event, from the native RawEvent (src/convert.rs). `data` is parsed from
 * contentJson when first read (by V8's JSON.parse, which builds it faster
 * than N-API could), as the Python package's `Event.data` is: a handler that
 * reads only the envelope's fields pays no parse (about 3 µs per 1 KiB).
 */
class Event {
  #data = undefined
  constructor(raw) {
    this.eventId = raw.eventId
    this.eventType = raw.eventType
    this.taskId = raw.taskId
    this.eventTime = raw.eventTime
    this.taskSequence = raw.taskSequence
    this.contentJson = raw.contentJson
    this.deliveryCount = raw.deliveryCount
  }
  /** The envelope's `data`; null when it has none. */
  get data() {
    if (this.#data === undefined) this.#data = JSON.parse(this.contentJson).data ?? null
    return this.#data
  }
  /** Every field, `data` included: what JSON.stringify and console.log show. */
  toJSON() {
    return { ...this, data: this.data }
  }
  [Symbol.for('nodejs.util.inspect.custom')](depth, options, inspect) {
    return `Event ${inspect(this.toJSON(), options)}`
  }
}

/** A handler's error as the text logged with its nack. */
function reasonOf(e) {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : String(e)
  } catch {
    return 'the handler failed with a value that cannot be shown'
  }
}

/**
 * Call `name` of the package: checks its arguments `args`, then runs `f`
 * (the addon's call). Every failure, a bad argument included, rejects.
 */
async function call(name, args, f) {
  try {
    checkArguments(name, args)
    return await f()
  } catch (e) {
    throw coded(e, name)
  }
}

/** `call` for the calls that return at once: failures throw. */
function callSync(name, args, f) {
  try {
    checkArguments(name, args)
    return f()
  } catch (e) {
    throw coded(e, name)
  }
}

function iso(t) {
  return t instanceof Date ? t.toISOString() : t
}

function range(r) {
  if (r == null) return r
  return { after: iso(r.after), before: iso(r.before) }
}

class Delivery {
  constructor(inner) {
    this._inner = inner
    /** @type {import('./index').Event} */
    this.event = new Event(inner.event)
    this.msgHandle = inner.msgHandle
  }
  ack() {
    return call('delivery.ack', [], () => this._inner.ack())
  }
  nack(delaySeconds) {
    return call('delivery.nack', [delaySeconds], () => this._inner.nack(delaySeconds))
  }
  extend(seconds) {
    return call('delivery.extend', [seconds], () => this._inner.extend(seconds))
  }
}

class Subscription {
  constructor(inner) {
    this._inner = inner
  }
  /** The next delivery, or null once closed. */
  async next() {
    const d = await call('subscription.next', [], () => this._inner.next())
    return d == null ? null : new Delivery(d)
  }
  /** Ends the stream; the server releases its unconfirmed events. */
  close() {
    this._inner.close()
  }
  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        const d = await this.next()
        return d == null ? { done: true, value: undefined } : { done: false, value: d }
      },
      return: async () => {
        this.close()
        return { done: true, value: undefined }
      },
    }
  }
}

/** A task's states from `client.watchTask`, ending with the one it ended in. */
class TaskWatch {
  constructor(inner) {
    this._inner = inner
  }
  /** The next state, or null after the one in which the task ended. */
  next() {
    return call('taskWatch.next', [], () => this._inner.next())
  }
  /** Stops following the task. */
  close() {
    this._inner.close()
  }
  [Symbol.asyncIterator]() {
    return {
      next: async () => {
        const t = await this.next()
        return t == null ? { done: true, value: undefined } : { done: false, value: t }
      },
      return: async () => {
        this.close()
        return { done: true, value: undefined }
      },
    }
  }
}

class Client {
  constructor(inner) {
    this._inner = inner
  }
  get isEmbedded() {
    return this._inner.isEmbedded
  }
  close() {
    return call('close', [], () => this._inner.close())
  }
  uploadFile(path, options) {
    return call('uploadFile', [path, options], () => this._inner.uploadFile(path, options))
  }
  uploadBytes(bytes, fileName, options) {
    return call('uploadBytes', [bytes, fileName, options], () =>
      this._inner.uploadBytes(Buffer.from(bytes), fileName, options),
    )
  }
  describeMedia(fileId) {
    return call('describeMedia', [fileId], () => this._inner.describeMedia(fileId))
  }
  createTask(spec, options) {
    return call('createTask', [spec, options], () => this._inner.createTask(spec, options))
  }
  describeTask(taskId) {
    return call('describeTask', [taskId], () => this._inner.describeTask(taskId))
  }
  listTasks(options) {
    return call('listTasks', [options], () =>
      this._inner.listTasks(
        options && { ...options, createTime: range(options.createTime), finishTime: range(options.finishTime) },
      ),
    )
  }
  taskOverview(options) {
    return call('taskOverview', [options], () => this._inner.taskOverview(range(options && options.createTime)))
  }
  redoTask(taskId) {
    return call('redoTask', [taskId], () => this._inner.redoTask(taskId))
  }
  cancelTask(taskId) {
    return call('cancelTask', [taskId], () => this._inner.cancelTask(taskId))
  }
  waitTask(taskId) {
    return call('waitTask', [taskId], () => this._inner.waitTask(taskId))
  }
  watchTask(taskId) {
    return new TaskWatch(callSync('watchTask', [taskId], () => this._inner.watchTask(taskId)))
  }
  async pullEvents(options) {
    const { maxEvents, waitSeconds } = options || {}
    const pulled = await call('pullEvents', [options], () => this._inner.pullEvents(maxEvents, waitSeconds))
    return pulled.map((p) => ({ msgHandle: p.msgHandle, event: new Event(p.event) }))
  }
  confirmEvents(msgHandles) {
    return call('confirmEvents', [msgHandles], () => this._inner.confirmEvents(msgHandles))
  }
  extendEvents(msgHandles, seconds) {
    return call('extendEvents', [msgHandles, seconds], () => this._inner.extendEvents(msgHandles, seconds))
  }
  nackEvents(msgHandles, delaySeconds) {
    return call('nackEvents', [msgHandles, delaySeconds], () => this._inner.nackEvents(msgHandles, delaySeconds))
  }
  eventConfig() {
    return call('eventConfig', [], () => this._inner.eventConfig())
  }
  modifyEventConfig(changes) {
    return call('modifyEventConfig', [changes], () => this._inner.modifyEventConfig(changes))
  }
  eventsState() {
    return call('eventsState', [], () => this._inner.eventsState())
  }
  subscribe(options) {
    return new Subscription(callSync('subscribe', [options], () => this._inner.subscribe(options?.maxInFlight)))
  }
  /**
   * Runs `handler(event)` on every event until `options.signal` aborts:
   * a handler that returns (or resolves) acks, one that throws nacks.
   * Resolves once stopped and the running handlers settled.
   */
  async consume(handler, options) {
    checkArguments('consume', [handler, options])
    const { signal, concurrency, maxInFlight } = options || {}
    if (signal && signal.aborted) return
    // Outcomes go back to the native consumer once per turn of the event
    // loop, in one call: one wake-up of its thread serves the batch.
    let ids = []
    let reasons = []
    const flush = () => {
      const batch = [ids, reasons]
      ids = []
      reasons = []
      run.settle(batch[0], batch[1])
    }
    const settled = (id, reason) => {
      if (ids.push(id) === 1) setImmediate(flush)
      reasons.push(reason)
    }
    const failed = (id, e) => settled(id, reasonOf(e))
    const start = (id, raw) => {
      let result
      try {
        result = handler(new Event(raw))
      } catch (e) {
        failed(id, e)
        return
      }
      Promise.resolve(result).then(
        () => settled(id, null),
        (e) => failed(id, e),
      )
    }
    let run
    try {
      run = this._inner.consume((handlerIds, events) => {
        for (let i = 0; i < handlerIds.length; i++) start(handlerIds[i], events[i])
      }, concurrency, maxInFlight)
    } catch (e) {
      throw coded(e, 'consume')
    }
    const stop = () => run.stop()
    if (signal) signal.addEventListener('abort', stop, { once: true })
    try {
      await run.wait()
    } catch (e) {
      throw coded(e, 'consume')
    } finally {
      if (signal) signal.removeEventListener('abort', stop)
    }
  }
}

/** Connects to a vodtask server, e.g. `http://127.0.0.1:50051`. */
async function connect(url, options) {
  return new Client(await call('connect', [url, options], () => native.connect(url, options)))
}

/** Opens a data dir and runs the engine in this process. */
async function open(dataDir, options) {
  return new Client(await call('open', [dataDir, options], () => native.open(dataDir, options)))
}

/**
 * Checks a vodtask HTTP callback. `headers`: a plain object (Node's
 * `req.headers`), a fetch `Headers`, a Map or an array of [name, value]
 * pairs; `body`: the raw body (Buffer or string).
 */
function verifyWebhook(secret, headers, body) {
  return callSync('verifyWebhook', [secret, headers, body], () => {
    const plain = {}
    const entries = Array.isArray(headers)
      ? headers
      : typeof headers.entries === 'function'
        ? headers.entries()
        : Object.entries(headers)
    for (const [k, v] of entries) {
      if (v != null) plain[k] = Array.isArray(v) ? v.join(', ') : String(v)
    }
    return native.verifyWebhook(secret, plain, typeof body === 'string' ? body : Buffer.from(body))
  })
}

module.exports = { connect, open, verifyWebhook, Client, Subscription, TaskWatch, Delivery }
