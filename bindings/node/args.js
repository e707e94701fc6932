// The arguments of every call of the package, checked before they reach the
// addon, so that a bad one fails with code 'INVALID_ARGUMENT' and a message
// naming the call and the field:
//   createTask: spec.transcode.fileId: expected a string, got number
// napi-rs converts arguments itself, but its errors carry napi's status
// names as `code` (StringExpected, InvalidArg...), name neither the call nor
// the argument, and it silently truncates numbers (1.5 or 2 ** 32 + 5 as an
// int32). The shapes mirror the #[napi(object)] structs of src/*.rs, in the
// JS layer's types (a time may be a Date); test/arguments.test.mjs checks
// their fields against the generated native.d.ts.
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
const boolean = (v, path) => typeof v === 'boolean' || fail(path, 'a boolean', v)
const number = (v, path) => typeof v === 'number' || fail(path, 'a number', v)
const integer = (expected, min, max) => (v, path) =>
  (Number.isInteger(v) && v >= min && v <= max) || fail(path, expected, v, typeof v === 'number' ? v : typeOf(v))
const int32 = integer('a 32-bit integer', -(2 ** 31), 2 ** 31 - 1)
const uint32 = integer('an integer in 0..4294967295', 0, 2 ** 32 - 1)
const int64 = integer('an integer', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
const bytes = (v, path) =>
  v instanceof Uint8Array || v instanceof ArrayBuffer || fail(path, 'a Uint8Array or Buffer', v)
const time = (v, path) =>
  typeof v === 'string' || (v instanceof Date && !Number.isNaN(v.getTime())) ||
  fail(path, 'an RFC 3339 string or a valid Date', v)
const func = (v, path) => typeof v === 'function' || fail(path, 'a function', v)
const abortSignal = (v, path) =>
  (v != null && typeof v.aborted === 'boolean' && typeof v.addEventListener === 'function') ||
  fail(path, 'an AbortSignal', v)

/** `undefined` and `null` pass, as they do for an `Option` in the addon. */
function optional(type) {
  const check = (v, path) => v == null || type(v, path)
  check.optional = true
  return check
}

const isObject = (v) => typeof v === 'object' && v !== null && !Array.isArray(v)

function arrayOf(type) {
  return (v, path) => {
    if (!Array.isArray(v)) fail(path, 'an array', v)
    v.forEach((x, i) => type(x, `${path}[${i}]`))
  }
}

/** A `HashMap<String, T>`. */
function recordOf(type) {
  return (v, path) => {
    if (!isObject(v)) fail(path, 'an object', v)
    for (const [k, x] of Object.entries(v)) type(x, `${path}.${k}`)
  }
}

/** Every shape by its name (native.d.ts's), for the test. */
const shapes = {}

/**
 * An object with these fields (others are ignored, as the addon ignores
 * them). `bare`: its fields are named without the argument's name, for an
 * options bag (`listTasks: limit: ...`, as the addon's own messages say).
 */
function shape(name, fields) {
  const check = (v, path, bare = false) => {
    if (!isObject(v)) fail(path, 'an object', v)
    for (const [k, type] of Object.entries(fields)) type(v[k], bare ? k : `${path}.${k}`)
  }
  check.fields = fields
  shapes[name] = check
  return check
}

/** An options bag: its fields are named on their own. */
function bag(s, { required = false } = {}) {
  const check = (v, path) => (!required && v == null) || s(v, path, true)
  check.optional = !required
  return check
}

// ------------------------------------------------------------------ shapes
// Named as in native.d.ts.

const DefinitionSubtask = shape('DefinitionSubtask', { definition: int32 })
const SubtaskSpec = shape('SubtaskSpec', {
  transcode: optional(DefinitionSubtask),
  snapshotByTimeOffset: optional(shape('SnapshotByTimeOffsetSubtask', { definition: int32, timeOffsetsMs: arrayOf(int64) })),
  imageSprites: optional(DefinitionSubtask),
  coverBySnapshot: optional(shape('CoverBySnapshotSubtask', { definition: int32, positionType: optional(string), position: number })),
})
const ProcedurePlan = shape('ProcedurePlan', { subtasks: arrayOf(SubtaskSpec), notifyMode: optional(string) })

const TaskSpec = shape('TaskSpec', {
  transcode: optional(shape('TranscodeSpec', { fileId: string, definitions: arrayOf(int32) })),
  snapshotByTimeOffset: optional(shape('SnapshotByTimeOffsetSpec', { fileId: string, definition: int32, timeOffsetsMs: arrayOf(int64) })),
  concat: optional(shape('ConcatSpec', { fileIds: arrayOf(string), outputTypes: arrayOf(string) })),
  clip: optional(shape('ClipSpec', { fileId: string, startTimeOffset: number, endTimeOffset: number })),
  imageSprites: optional(shape('ImageSpritesSpec', { fileId: string, definition: int32 })),
  pullUpload: optional(shape('PullUploadSpec', {
    mediaUrl: string,
    fileName: optional(string),
    sourceContext: optional(string),
    timeoutSeconds: optional(int32),
    procedure: optional(ProcedurePlan),
  })),
  deleteMedia: optional(shape('DeleteMediaSpec', { fileIds: arrayOf(string) })),
  procedure: optional(shape('ProcedureSpec', { fileId: string, subtasks: arrayOf(SubtaskSpec), notifyMode: optional(string) })),
})

const TimeRange = shape('TimeRange', { after: optional(time), before: optional(time) })

const ConnectOptions = shape('ConnectOptions', {
  apiKey: string,
  timeoutMs: optional(uint32),
  connectTimeoutMs: optional(uint32),
  caCert: optional((v, path) =>
    typeof v === 'string' || v instanceof Uint8Array || fail(path, 'a path, PEM text or a Buffer', v)),
})
const OpenOptions = shape('OpenOptions', {
  apiKey: optional(string),
  workers: optional(uint32),
  httpListen: optional(string),
  ffmpeg: optional(string),
  ffprobe: optional(string),
  sync: optional(string),
})
const UploadOptions = shape('UploadOptions', {
  fileName: optional(string),
  sourceContext: optional(string),
  procedure: optional(ProcedurePlan),
})
const CreateTaskOptions = shape('CreateTaskOptions', {
  priority: optional(int32),
  sessionId: optional(string),
  sessionContext: optional(string),
})
const ListTasksOptions = shape('ListTasksOptions', {
  status: optional(string),
  taskType: optional(string),
  fileId: optional(string),
  createTime: optional(TimeRange),
  finishTime: optional(TimeRange),
  sortBy: optional(string),
  order: optional(string),
  limit: optional(int32),
  scrollToken: optional(string),
})
const EventConfigChanges = shape('EventConfigChanges', {
  mode: optional(string),
  notificationUrl: optional(string),
  eventTypes: optional(recordOf(boolean)),
  visibilityTimeoutSeconds: optional(int32),
  maxDeliveries: optional(int32),
  retentionSeconds: optional(int64),
  callbackTimeoutSeconds: optional(int32),
  retryScheduleSeconds: optional(arrayOf(int64)),
  disableAfterSeconds: optional(int64),
  endpointEnabled: optional(boolean),
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
  connect: [['url', string], ['options', bag(ConnectOptions, { required: true })]],
  open: [['dataDir', string], ['options', bag(OpenOptions)]],
  verifyWebhook: [['secret', string], ['headers', headers], ['body', body]],
  uploadFile: [['path', string], ['options', bag(UploadOptions)]],
  uploadBytes: [['bytes', bytes], ['fileName', string], ['options', bag(UploadOptions)]],
  describeMedia: [['fileId', string]],
  createTask: [['spec', TaskSpec], ['options', bag(CreateTaskOptions)]],
  describeTask: taskId,
  redoTask: taskId,
  cancelTask: taskId,
  waitTask: taskId,
  watchTask: taskId,
  listTasks: [['options', bag(ListTasksOptions)]],
  taskOverview: [['options', bag(shape('TaskOverviewOptions', { createTime: optional(TimeRange) }))]],
  pullEvents: [['options', bag(shape('PullEventsOptions', { maxEvents: optional(int32), waitSeconds: optional(int32) }))]],
  confirmEvents: [['msgHandles', arrayOf(string)]],
  extendEvents: [['msgHandles', arrayOf(string)], ['seconds', int32]],
  nackEvents: [['msgHandles', arrayOf(string)], ['delaySeconds', optional(int32)]],
  modifyEventConfig: [['changes', bag(EventConfigChanges, { required: true })]],
  subscribe: [['options', bag(shape('SubscribeOptions', { maxInFlight: optional(int32) }))]],
  consume: [
    ['handler', func],
    ['options', bag(shape('ConsumeOptions', { signal: optional(abortSignal), concurrency: optional(uint32), maxInFlight: optional(int32) }))],
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

module.exports = {
  checkArguments,
  invalidArgument,
  // For test/arguments.test.mjs, which compares them with native.d.ts.
  shapes,
}
