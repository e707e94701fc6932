// The Node package `vodtask`: the native binding (vodtask.node, built from
// src/*.rs over the Rust crate vodtask-client) in JS clothes. A method
// builds its request, a plain camelCase object, and the addon's generic
// `call(method, request)` sends it to that RPC of the contract; the answer
// comes back as a plain object. Requests and answers cross as JSON text
// (see src/lib.rs), converted to and from the proto messages in Rust
// through the descriptors: no message has a shape in this package besides
// its TypeScript declaration (index.d.ts). Errors get a gRPC `code`;
// subscriptions and watches are async iterators, consume takes an
// AbortSignal; JS's own arguments are checked first (args.js).
'use strict'

const native = require('./vodtask.node')
const { checkArguments, invalidArgument } = require('./args')

const CODED = /^([A-Z_]+): ([\s\S]*)$/

// napi's codes for argument errors: the converter's refusals of a request
// (InvalidArg, see src/lib.rs) and napi-rs's own argument conversion.
const NAPI_ARGUMENT_CODES = new Set([
  'InvalidArg', 'ObjectExpected', 'StringExpected', 'NameExpected', 'FunctionExpected', 'NumberExpected',
  'BooleanExpected', 'ArrayExpected', 'BigintExpected', 'DateExpected', 'ArrayBufferExpected',
])

/**
 * The native layer sends `"<GRPC_CODE>: <message>"`; make it an Error with
 * `code`. Argument errors become INVALID_ARGUMENT with the call's name in
 * front, as args.js's own are.
 */
function coded(e, name) {
  if (e instanceof Error && typeof e.message === 'string') {
    if (NAPI_ARGUMENT_CODES.has(e.code)) return invalidArgument(`${name}: ${e.message}`)
    const m = CODED.exec(e.message)
    if (m) {
      const err = new Error(m[2])
      err.code = m[1]
      return err
    }
  }
  return e
}

/**
 * JSON.stringify's replacer for requests. A Date is already its RFC 3339
 * text (Date.prototype.toJSON), but an invalid one would become null, i.e.
 * unset, and drop a filter without a word: it goes as text the converter
 * refuses, naming the field. A BigInt (which JSON.stringify refuses) goes
 * as a number when exact, else as text, which the converter refuses.
 */
function replacer(key, value) {
  if (value === null) {
    const raw = this[key]
    if (raw instanceof Date) return 'Invalid Date'
  } else if (typeof value === 'bigint') {
    return Number.isSafeInteger(Number(value)) ? Number(value) : String(value)
  }
  return value
}

function encode(request) {
  return JSON.stringify(request ?? {}, replacer)
}

/**
 * An event, from the native RawEvent (src/consume.rs) or a message of the
 * JSON tree. `data` is parsed from contentJson when first read (by V8's
 * JSON.parse, which builds it faster than N-API could), as the Python
 * package's `Event.data` is: a handler that reads only the envelope's
 * fields pays no parse (about 3 µs per 1 KiB).
 */
class Event {
  #data = undefined
  constructor(raw) {
    this.eventId = raw.eventId
    this.eventType = raw.eventType
    this.taskId = raw.taskId
    // Unset: null, as in every message of the JSON tree (napi leaves it out).
    this.eventTime = raw.eventTime ?? null
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
  async next() {
    const text = await call('taskWatch.next', [], () => this._inner.next())
    return text == null ? null : JSON.parse(text)
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

/** `[{status: 'FINISH', count: 3}]` as `{FINISH: 3}`. */
function counts(list, key) {
  return Object.fromEntries(list.map((c) => [c[key], c.count]))
}

/** The unary RPC `method` of the native client `inner` with `request`; resolves to the response. */
async function rpc(inner, method, request) {
  return JSON.parse(await inner.call(method, encode(request)))
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
    return call('uploadFile', [path, options], async () =>
      JSON.parse(await this._inner.uploadFile(path, encode(options))),
    )
  }
  uploadBytes(bytes, fileName, options) {
    return call('uploadBytes', [bytes, fileName, options], async () =>
      JSON.parse(await this._inner.uploadBytes(Buffer.from(bytes), encode({ ...options, fileName }))),
    )
  }
  describeMedia(fileId) {
    return call('describeMedia', [fileId], () => rpc(this._inner, 'DescribeMedia', { fileId }))
  }
  createTask(spec, options) {
    return call('createTask', [spec, options], async () => (await rpc(this._inner, 'CreateTask', { ...options, spec })).taskId)
  }
  describeTask(taskId) {
    return call('describeTask', [taskId], () => rpc(this._inner, 'DescribeTask', { taskId }))
  }
  /**
   * Every matching task, fetched a page (`limit` tasks) at a time as the
   * loop goes: `for await (const t of client.listTasks({ status: 'FINISH' }))`.
   * A bad options bag throws at once; the rest fails the loop.
   */
  listTasks(options) {
    checkArgumentsNow('listTasks', [options])
    const self = this
    return (async function* tasks() {
      let request = options
      for (;;) {
        const page = await call('listTasks', [request], () => rpc(self._inner, 'ListTasks', request))
        yield* page.tasks
        if (!page.scrollToken) return
        request = { ...request, scrollToken: page.scrollToken }
      }
    })()
  }
  /** One page: `{ tasks, scrollToken }`; pass `scrollToken` back for the next, empty at the end. */
  listTasksPage(options) {
    return call('listTasksPage', [options], () => rpc(this._inner, 'ListTasks', options))
  }
  taskOverview(options) {
    return call('taskOverview', [options], async () => {
      const r = await rpc(this._inner, 'GetTaskOverview', options)
      return { ...r, byStatus: counts(r.byStatus, 'status'), byType: counts(r.byType, 'taskType') }
    })
  }
  redoTask(taskId) {
    return call('redoTask', [taskId], () => rpc(this._inner, 'RedoTask', { taskId }))
  }
  cancelTask(taskId) {
    return call('cancelTask', [taskId], () => rpc(this._inner, 'CancelTask', { taskId }))
  }
  waitTask(taskId) {
    return call('waitTask', [taskId], async () => JSON.parse(await this._inner.waitTask(taskId)))
  }
  watchTask(taskId) {
    return new TaskWatch(callSync('watchTask', [taskId], () => this._inner.watchTask(taskId)))
  }
  pullEvents(options) {
    return call('pullEvents', [options], async () => {
      const { events } = await rpc(this._inner, 'PullEvents', options)
      return events.filter((d) => d.event != null).map((d) => ({ msgHandle: d.msgHandle, event: new Event(d.event) }))
    })
  }
  confirmEvents(msgHandles) {
    return call('confirmEvents', [msgHandles], async () => (await rpc(this._inner, 'ConfirmEvents', { msgHandles })).results)
  }
  extendEvents(msgHandles, seconds) {
    return call('extendEvents', [msgHandles, seconds], async () =>
      (await rpc(this._inner, 'ExtendEvents', { msgHandles, seconds })).results)
  }
  nackEvents(msgHandles, delaySeconds) {
    return call('nackEvents', [msgHandles, delaySeconds], async () =>
      (await rpc(this._inner, 'NackEvents', { msgHandles, delaySeconds })).results)
  }
  eventConfig() {
    return call('eventConfig', [], () => rpc(this._inner, 'GetEventConfig', {}))
  }
  modifyEventConfig(changes) {
    return call('modifyEventConfig', [changes], () => rpc(this._inner, 'ModifyEventConfig', changes))
  }
  eventsState() {
    return call('eventsState', [], () => rpc(this._inner, 'DescribeEventsState', {}))
  }
  /** One page of the dead-letter list: `{ events, nextPageToken }` (empty token at the end). */
  deadLetterEvents(options) {
    return call('deadLetterEvents', [options], async () => {
      const r = await rpc(this._inner, 'ListDeadLetterEvents', options)
      return { ...r, events: r.events.map((e) => new Event(e)) }
    })
  }
  /** Puts dead-lettered events back in the queue: these, or (no ids) all; resolves to how many. */
  redriveEvents(eventIds) {
    return call('redriveEvents', [eventIds], async () =>
      (await rpc(this._inner, 'RedriveEvents', eventIds == null ? { all: true } : { eventIds })).redriven)
  }
  /** Delivers these events again now, whatever their state; resolves to how many exist. */
  resendEvents(eventIds) {
    return call('resendEvents', [eventIds], async () => (await rpc(this._inner, 'ResendEvents', { eventIds })).resent)
  }
  /** PUSH mode: the callback attempts of one event (`{ eventId }`) or of a task's events (`{ taskId }`). */
  callbackAttempts(of) {
    return call('callbackAttempts', [of], async () => (await rpc(this._inner, 'ListCallbackAttempts', of)).attempts)
  }
  /** PUSH mode: a new signing secret; the old one keeps signing for `overlapSeconds` (default a day). */
  rotateSigningSecret(options) {
    return call('rotateSigningSecret', [options], () => rpc(this._inner, 'RotateSigningSecret', options))
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

/** checkArguments for a call that returns at once: a bad argument throws. */
function checkArgumentsNow(name, args) {
  callSync(name, args, () => undefined)
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
