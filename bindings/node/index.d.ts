// Types of the Node package `vodtask`. The data types (Task, TaskSpec,
// MediaInfo, RawEvent, ...) are generated from the Rust binding by the napi-rs
// CLI into native.d.ts at build time; this file declares the JS layer
// (index.js) over them.
import type {
  ConnectOptions,
  CreateTaskOptions,
  EventConfig,
  EventConfigChanges,
  EventsState,
  HandleResult,
  ListTasksOptions as NativeListTasksOptions,
  MediaInfo,
  OpenOptions,
  RawEvent,
  Task,
  TaskList,
  TaskOverview,
  TaskSpec,
  UploadOptions,
  UploadResult,
  WebhookEvent,
} from './native'

export type * from './native'

/** An event as every delivery path (consume, subscribe, pullEvents) gives it. */
export interface Event extends RawEvent {
  /** The envelope's `data`, parsed from contentJson when first read. */
  readonly data: any
  /** Every field, `data` included. */
  toJSON(): RawEvent & { data: any }
}

export interface PulledEvent {
  /** Valid for this delivery only. */
  msgHandle: string
  event: Event
}

/**
 * Every failed call rejects (subscribe and verifyWebhook: throws) with one of
 * these. An argument of the wrong type, or a required field missing, is
 * 'INVALID_ARGUMENT' with the call and the field in the message:
 * `createTask: spec.transcode.fileId: expected a string, got number`.
 */
export interface VodtaskError extends Error {
  /** The gRPC status name: 'NOT_FOUND', 'INVALID_ARGUMENT', 'UNAUTHENTICATED', 'UNAVAILABLE', ... */
  code: string
}

/** A time as an RFC 3339 string or a Date. */
export type Time = string | Date

export interface TimeRangeInput {
  after?: Time
  before?: Time
}

export interface ListTasksOptions extends Omit<NativeListTasksOptions, 'createTime' | 'finishTime'> {
  createTime?: TimeRangeInput
  finishTime?: TimeRangeInput
}

/** What ack, nack and extend report: 'CONFIRMED', 'ALREADY_CONFIRMED', 'EXPIRED', 'UNKNOWN', 'EXTENDED', 'NACKED'. */
export type HandleStatus = string

export declare class Delivery {
  readonly event: Event
  /** Valid for this delivery only. */
  readonly msgHandle: string
  /** Confirms the event: it is never delivered again. */
  ack(): Promise<HandleStatus>
  /** Gives the event back, after `delaySeconds` or (unset) with exponential backoff. */
  nack(delaySeconds?: number): Promise<HandleStatus>
  /** Extends the lease to `seconds` from now. */
  extend(seconds: number): Promise<HandleStatus>
}

/** Deliveries from SubscribeEvents, reconnected as needed; `break` out of a for-await loop closes it. */
export declare class TaskWatch implements AsyncIterable<Task> {
  /** The next state, or null after the one in which the task ended. */
  next(): Promise<Task | null>
  /** Stops following the task. */
  close(): void
  [Symbol.asyncIterator](): AsyncIterator<Task>
}

export declare class Subscription implements AsyncIterable<Delivery> {
  /** The next delivery, or null once closed. */
  next(): Promise<Delivery | null>
  /** Ends the stream; the server releases its unconfirmed events. */
  close(): void
  [Symbol.asyncIterator](): AsyncIterator<Delivery>
}

export interface ConsumeOptions {
  /** Stops the consumer: no new events; running handlers finish and settle theirs. */
  signal?: AbortSignal
  /** Handlers running at once (default 16). */
  concurrency?: number
  /** Unconfirmed events on the stream (default 16, at least `concurrency`). */
  maxInFlight?: number
}

export declare class Client {
  /** Whether this client runs the engine in this process (`open`). */
  readonly isEmbedded: boolean
  /** Embedded: stops the engine (running tasks go back to the queue) and its file server, and frees the data dir. Afterwards every call fails with code 'UNAVAILABLE'; closing twice does nothing. */
  close(): Promise<void>
  /** Uploads a file from disk; `fileName` defaults to the path's last component. */
  uploadFile(path: string, options?: UploadOptions): Promise<UploadResult>
  uploadBytes(bytes: Uint8Array, fileName: string, options?: Omit<UploadOptions, 'fileName'>): Promise<UploadResult>
  describeMedia(fileId: string): Promise<MediaInfo>
  /** Queues a task; resolves to its id. `spec` has exactly one field, e.g. `{ transcode: { fileId, definitions: [100010] } }`. */
  createTask(spec: TaskSpec, options?: CreateTaskOptions): Promise<string>
  describeTask(taskId: string): Promise<Task>
  listTasks(options?: ListTasksOptions): Promise<TaskList>
  taskOverview(options?: { createTime?: TimeRangeInput }): Promise<TaskOverview>
  redoTask(taskId: string): Promise<Task>
  cancelTask(taskId: string): Promise<Task>
  /** Resolves with the task once it ended (FINISH or ABORTED; errCode 0 is success). Takes nothing from the app's event queue, so every copy of an app can wait for its own task. */
  waitTask(taskId: string): Promise<Task>
  /** The task now, then at each change of status, progress or subtasks, until it ends: `for await (const t of client.watchTask(id))`. Reconnects by itself. Throws for bad arguments. */
  watchTask(taskId: string): TaskWatch
  /** Long poll: up to `maxEvents` (default 16) events, waiting up to `waitSeconds` (default 5). */
  pullEvents(options?: { maxEvents?: number; waitSeconds?: number }): Promise<PulledEvent[]>
  confirmEvents(msgHandles: string[]): Promise<HandleResult[]>
  extendEvents(msgHandles: string[], seconds: number): Promise<HandleResult[]>
  nackEvents(msgHandles: string[], delaySeconds?: number): Promise<HandleResult[]>
  eventConfig(): Promise<EventConfig>
  modifyEventConfig(changes: EventConfigChanges): Promise<EventConfig>
  eventsState(): Promise<EventsState>
  /** A reliable subscription: `for await (const d of client.subscribe({ maxInFlight: 16 })) { ...; await d.ack() }`. */
  subscribe(options?: { maxInFlight?: number }): Subscription
  /**
   * Runs `handler` on every event until `options.signal` aborts. A handler
   * that returns acks the event; one that throws nacks it (redelivered with
   * backoff). A slow handler's lease is kept alive. Resolves once stopped.
   */
  consume(handler: (event: Event) => unknown | Promise<unknown>, options?: ConsumeOptions): Promise<void>
}

/** Connects to a vodtask server, e.g. `connect('http://127.0.0.1:50051', { apiKey })`. */
export declare function connect(url: string, options: ConnectOptions): Promise<Client>
/** Opens (or creates) a data dir and runs the engine in this process; `close()` it before exiting. */
export declare function open(dataDir: string, options?: OpenOptions): Promise<Client>
/** Checks a vodtask HTTP callback (Standard Webhooks signature, timestamp within 5 minutes) and parses it; throws (code 'INVALID_ARGUMENT') otherwise. */
export declare function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined> | Headers | Map<string, string> | Array<[string, string]>,
  body: string | Uint8Array,
): WebhookEvent
