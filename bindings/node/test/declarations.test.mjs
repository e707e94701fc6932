// index.d.ts declares the messages by hand, one line per field, while the
// package converts them generically from the proto's descriptors: this
// keeps the two in step. Every message of proto/vodtask/v1 is declared with
// the proto's fields in their JSON names (or is listed below as one users
// never see whole), and every enum is a union of its names.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { packageDir, repoDir } from './helpers.mjs'

/** The interface of index.d.ts that declares a message, where its name differs. */
const renamed = {
  CreateTaskRequest: 'CreateTaskOptions',
  ListTasksRequest: 'ListTasksOptions',
  ListTasksResponse: 'TaskPage',
  GetTaskOverviewResponse: 'TaskOverview',
  UploadMediaHeader: 'UploadOptions',
  UploadMediaResponse: 'UploadResult',
  Event: 'RawEvent',
  EventDelivery: 'PulledEvent',
  PullEventsRequest: 'PullEventsOptions',
  DescribeEventsStateResponse: 'EventsState',
  ModifyEventConfigRequest: 'EventConfigChanges',
  ListDeadLetterEventsRequest: 'DeadLetterOptions',
  ListDeadLetterEventsResponse: 'DeadLetterPage',
  RotateSigningSecretRequest: 'RotateSigningSecretOptions',
}

/** Fields that are a positional argument of their call rather than an option. */
const positional = { CreateTaskRequest: ['spec'] }

/**
 * Messages users never see whole: requests made of a call's positional
 * arguments, answers the call unwraps (createTask resolves to the task id),
 * the streams' messages, and the counts taskOverview turns into records.
 */
const unwrapped = [
  'CreateTaskResponse', 'DescribeTaskRequest', 'WatchTaskRequest', 'WatchTaskResponse', 'GetTaskOverviewRequest',
  'StatusCount', 'TypeCount', 'RedoTaskRequest', 'CancelTaskRequest', 'UploadMediaRequest', 'DescribeMediaRequest',
  'PullEventsResponse', 'SubscribeEventsRequest', 'Heartbeat', 'SubscribeEventsResponse', 'ConfirmEventsRequest',
  'ExtendEventsRequest', 'NackEventsRequest', 'SettleEventsResponse', 'RedriveEventsRequest', 'RedriveEventsResponse',
  'DescribeEventsStateRequest', 'GetEventConfigRequest', 'ListCallbackAttemptsRequest', 'ListCallbackAttemptsResponse',
  'ResendEventsRequest', 'ResendEventsResponse',
]

const camel = (name) => name.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())

/** The messages ({name: [json field names]}) and enums ({name: [values]}) of the contract. */
function readProto() {
  const messages = {}
  const enums = {}
  const dir = path.join(repoDir, 'proto', 'vodtask', 'v1')
  for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.proto'))) {
    const text = fs.readFileSync(path.join(dir, file), 'utf8').replace(/\/\/.*$/gm, '')
    // Top-level blocks; a message's oneof is a block inside it.
    for (const [, kind, name, body = ''] of text.matchAll(/^(message|enum) (\w+) \{(?:\}|\n([\s\S]*?)^\})/gm)) {
      if (kind === 'enum') {
        enums[name] = [...body.matchAll(/^\s*(\w+)\s*=\s*\d+;/gm)].map(([, v]) => v)
      } else {
        messages[name] = [...body.matchAll(/^\s*(?:repeated |optional )?(?:map<[^>]+>|[\w.]+) (\w+) = \d+;/gm)].map(
          ([, f]) => camel(f),
        )
      }
    }
  }
  return { messages, enums }
}

/** index.d.ts's interfaces ({name: [fields]}) and string-literal unions ({name: [literals]}). */
function readDeclarations() {
  const text = fs.readFileSync(path.join(packageDir, 'index.d.ts'), 'utf8')
  const interfaces = {}
  for (const [, name, body] of text.matchAll(/^export interface (\w+)(?: extends [^{]+)? \{\n([\s\S]*?)^\}/gm)) {
    interfaces[name] = [...body.matchAll(/^ {2}(?:readonly )?(\w+)\??:/gm)].map(([, f]) => f)
  }
  const unions = {}
  for (const [, name, body] of text.matchAll(/^export type (\w+) =((?:\s*\|?\s*'[^']*')+)\s*$/gm)) {
    unions[name] = [...body.matchAll(/'([^']*)'/g)].map(([, v]) => v)
  }
  return { interfaces, unions }
}

test('index.d.ts declares every message of the contract with its fields', () => {
  const { messages } = readProto()
  const { interfaces } = readDeclarations()
  assert.ok(Object.keys(messages).length > 80, 'the proto files were read')
  const undeclared = []
  for (const [message, fields] of Object.entries(messages)) {
    if (unwrapped.includes(message)) continue
    const name = renamed[message] ?? message
    if (!interfaces[name]) {
      undeclared.push(message)
      continue
    }
    const expected = fields.filter((f) => !(positional[message] ?? []).includes(f))
    assert.deepEqual(interfaces[name], expected, `${message} (index.d.ts: ${name}): fields in the proto's order`)
  }
  assert.deepEqual(undeclared, [], 'messages with no interface in index.d.ts (or list them as unwrapped)')
  assert.deepEqual(unwrapped.filter((m) => !messages[m]), [], 'unwrapped messages that the proto no longer has')
})

test("index.d.ts's enum unions have the enums' values", () => {
  const { enums } = readProto()
  const { unions } = readDeclarations()
  for (const [name, values] of Object.entries(enums)) {
    const prefix = `${name.replace(/(?<=.)([A-Z])/g, '_$1').toUpperCase()}_`
    const expected = values.map((v) => v.slice(prefix.length))
    assert.ok(unions[name], `enum ${name} has no union in index.d.ts`)
    // UNSPECIFIED is in a union only where an answer shows an unset field.
    assert.deepEqual(
      unions[name].filter((v) => v !== 'UNSPECIFIED'),
      expected.filter((v) => v !== 'UNSPECIFIED'),
      `enum ${name}`,
    )
  }
})
