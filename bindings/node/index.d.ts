// Types of the Node package `vodtask`, written by hand: one interface per
// message of the contract (proto/vodtask/v1/*.proto), one line per field,
// in the proto's order and its JSON names (lowerCamelCase), as the calls
// send and return them. The package converts messages generically (see
// index.js): a field added to the proto reaches JS with no code, and needs
// only its line here (test/declarations.test.mjs compares the two).
//
// How values look: enums are their names without the prefix ('FINISH' for
// TASK_STATUS_FINISH; UNSPECIFIED where a field was left unset); 64-bit
// integers are numbers; times are RFC 3339 strings in UTC ('…Z'; a Date
// too where a request takes one). In a returned message every field is
// present: a scalar with its default (0, '', false), a list as [], an
// unset message or optional scalar as null, and of a oneof (TaskSpec,
// TaskOutput, ...) only the member that is set.

// ------------------------------------------------------------------ enums

export type TaskStatus = 'WAITING' | 'PROCESSING' | 'FINISH' | 'ABORTED'
export type TaskType =
  | 'TRANSCODE'
  | 'SNAPSHOT_BY_TIME_OFFSET'
  | 'CONCAT'
  | 'CLIP'
  | 'IMAGE_SPRITES'
  | 'PULL_UPLOAD'
  | 'DELETE_MEDIA'
  | 'PROCEDURE'
export type FileType = 'MP4' | 'M3U8'
/** When ProcedureStateChanged is sent; UNSPECIFIED means FINISH. */
export type NotifyMode = 'UNSPECIFIED' | 'FINISH' | 'CHANGE' | 'NONE'
/** UNSPECIFIED means TIME (seconds from the start); PERCENT: 0..100 of the duration. */
export type PositionType = 'UNSPECIFIED' | 'TIME' | 'PERCENT'
export type SubtaskStatus = 'WAITING' | 'PROCESSING' | 'SUCCESS' | 'FAIL'
export type TaskSortBy = 'CREATE_TIME' | 'FINISH_TIME'
export type SortOrder = 'ASC' | 'DESC'
export type SourceType = 'CLIENT_UPLOAD' | 'TASK_OUTPUT' | 'PULL'
/** What ack, nack, extend and the settle calls report. */
export type HandleStatus = 'CONFIRMED' | 'ALREADY_CONFIRMED' | 'EXPIRED' | 'UNKNOWN' | 'EXTENDED' | 'NACKED'
export type DeliveryMode = 'PULL' | 'PUSH'
export type CircuitState = 'UNSPECIFIED' | 'CLOSED' | 'OPEN' | 'HALF_OPEN'
export type AttemptOutcome = 'DELIVERED' | 'FAILED' | 'GONE'

/** A time in a request: an RFC 3339 string or a Date. */
export type Time = string | Date

// ------------------------------------------------------------ task specs
// What a task does. As a request, a field with a default may be left out
// (`?`); in a returned task (`task.input`) every field is present.

/** Exactly one field is set: `{ transcode: { fileId, definitions: [100010] } }`. */
export interface TaskSpec {
  transcode?: TranscodeSpec
  snapshotByTimeOffset?: SnapshotByTimeOffsetSpec
  concat?: ConcatSpec
  clip?: ClipSpec
  imageSprites?: ImageSpritesSpec
  pullUpload?: PullUploadSpec
  deleteMedia?: DeleteMediaSpec
  procedure?: ProcedureSpec
}

export interface TranscodeSpec {
  fileId: string
  /** MP4 100010..100040, HLS 100210..100240. */
  definitions: number[]
}

export interface SnapshotByTimeOffsetSpec {
  fileId: string
  /** 10: JPEG at the source resolution; 20: JPEG 360p. */
  definition: number
  timeOffsetsMs: number[]
}

export interface ConcatSpec {
  fileIds: string[]
  outputTypes: FileType[]
}

export interface ClipSpec {
  fileId: string
  /** Seconds. */
  startTimeOffset: number
  /** Seconds; past the end means "to the end". */
  endTimeOffset: number
}

export interface ImageSpritesSpec {
  fileId: string
  definition: number
}

export interface PullUploadSpec {
  mediaUrl: string
  fileName?: string
  sourceContext?: string
  /** 1..86400; unset means 3600. */
  timeoutSeconds?: number
  procedure?: ProcedurePlan | null
}

export interface DeleteMediaSpec {
  fileIds: string[]
}

export interface ProcedureSpec {
  fileId: string
  subtasks: SubtaskSpec[]
  notifyMode?: NotifyMode
}

/** A procedure without its file: what an upload or a pull starts on the file it creates. */
export interface ProcedurePlan {
  subtasks: SubtaskSpec[]
  notifyMode?: NotifyMode
}

/** Exactly one field is set. */
export interface SubtaskSpec {
  transcode?: TranscodeSubtask
  snapshotByTimeOffset?: SnapshotByTimeOffsetSubtask
  imageSprites?: ImageSpritesSubtask
  coverBySnapshot?: CoverBySnapshotSubtask
}

export interface TranscodeSubtask {
  definition: number
}

export interface SnapshotByTimeOffsetSubtask {
  definition: number
  timeOffsetsMs: number[]
}

export interface ImageSpritesSubtask {
  definition: number
}

export interface CoverBySnapshotSubtask {
  definition: number
  positionType?: PositionType
  position: number
}

/** The subtasks with only a definition, under their former common name. */
export type DefinitionSubtask = TranscodeSubtask

// ---------------------------------------------------------- task outputs

/** The member of the task's type is set. */
export interface TaskOutput {
  transcode?: TranscodeOutput
  snapshotByTimeOffset?: SnapshotByTimeOffsetOutput
  concat?: ConcatOutput
  clip?: ClipOutput
  imageSprites?: ImageSpritesOutput
  pullUpload?: PullUploadOutput
  deleteMedia?: DeleteMediaOutput
  procedure?: ProcedureOutput
}

/** A new media file a task wrote. */
export interface OutputFile {
  fileType: FileType
  fileId: string
  url: string
  durationSeconds: number
  size: number
}

export interface ConcatOutput {
  /** In the order of outputTypes. */
  files: OutputFile[]
}

export interface ClipOutput {
  file: OutputFile | null
}

export interface ImageSpritesOutput {
  fileId: string
  definition: number
  totalCount: number
  imageUrls: string[]
  webVttUrl: string
}

export interface PullUploadOutput {
  fileId: string
  fileUrl: string
  size: number
  procedureTaskId: string
}

export interface DeleteMediaOutput {
  deletedFileIds: string[]
}

export interface ProcedureOutput {
  subtasks: Subtask[]
}

export interface Subtask {
  input: SubtaskSpec | null
  status: SubtaskStatus
  errCode: number
  message: string
  progress: number
  beginTime: string | null
  finishTime: string | null
  output: SubtaskOutput | null
}

/** The member of the subtask's kind is set. */
export interface SubtaskOutput {
  transcode?: PlayItem
  snapshotByTimeOffset?: SnapshotByTimeOffsetOutput
  imageSprites?: ImageSpritesOutput
  coverBySnapshot?: CoverOutput
}

export interface CoverOutput {
  fileId: string
  url: string
}

export interface TranscodeOutput {
  playSet: PlayItem[]
}

export interface PlayItem {
  definition: number
  fileId: string
  url: string
  /** Video bits per second. */
  vbitrate: number
  vwidth: number
  vheight: number
  durationSeconds: number
  size: number
}

export interface SnapshotByTimeOffsetOutput {
  pictures: SnapshotPicture[]
}

export interface SnapshotPicture {
  timeOffsetMs: number
  /** 0 = taken. */
  status: number
  message: string
  fileId: string
  url: string
}

// ------------------------------------------------------------------ tasks

export interface Task {
  taskId: string
  taskType: TaskType
  status: TaskStatus
  /** 0 = success (docs/api.md, error codes). */
  errCode: number
  message: string
  /** 0..100. */
  progress: number
  attempt: number
  createTime: string | null
  beginProcessTime: string | null
  finishTime: string | null
  priority: number
  sessionId: string
  sessionContext: string
  fileId: string
  input: TaskSpec | null
  output: TaskOutput | null
  cancelRequested: boolean
  /** Oldest first; empty in listTasks. */
  previousAttempts: TaskAttempt[]
}

export interface TaskAttempt {
  attempt: number
  status: TaskStatus
  errCode: number
  message: string
  beginProcessTime: string | null
  finishTime: string | null
  output: TaskOutput | null
}

/** createTask's options (CreateTaskRequest without its spec). */
export interface CreateTaskOptions {
  /** -10..10, higher first. */
  priority?: number
  /** At most 50 characters; deduplicates submissions. */
  sessionId?: string
  sessionContext?: string
}

/** A half-open range `after <= t < before`, as a request gives it. */
export interface TimeRangeInput {
  after?: Time | null
  before?: Time | null
}

/** A half-open range `after <= t < before`, as an answer gives it. */
export interface TimeRange {
  after: string | null
  before: string | null
}

/** ListTasksRequest. */
export interface ListTasksOptions {
  status?: TaskStatus
  taskType?: TaskType
  /** Tasks that read, wrote or deleted this file. */
  fileId?: string
  createTime?: TimeRangeInput
  finishTime?: TimeRangeInput
  sortBy?: TaskSortBy
  order?: SortOrder
  /** Tasks a page, 1..100; unset means 10. */
  limit?: number
  /** From the previous page (listTasksPage); keep the other options unchanged while paging. */
  scrollToken?: string
}

/** ListTasksResponse: one page of listTasksPage. */
export interface TaskPage {
  tasks: Task[]
  /** Empty when there are no more tasks. */
  scrollToken: string
}
/** The page's former name. */
export type TaskList = TaskPage

/** GetTaskOverviewResponse, its counts by name. */
export interface TaskOverview {
  total: number
  /** Counts by status ('WAITING', 'FINISH', ...), of the statuses that have tasks. */
  byStatus: Partial<Record<TaskStatus, number>>
  /** Counts by task type ('TRANSCODE', ...). */
  byType: Partial<Record<TaskType, number>>
  /** WAITING tasks (all time). */
  queueDepth: number
  /** PROCESSING tasks (all time). */
  running: number
  /** The range counted: the one asked for, widened to whole hours. */
  countedCreateTime: TimeRange | null
}

// ------------------------------------------------------------------ media

/** The options of an upload (UploadMediaHeader). */
export interface UploadOptions {
  /** Default: the path's last component. */
  fileName?: string
  sourceContext?: string
  /** A procedure to start on the file once it is stored. */
  procedure?: ProcedurePlan | null
}

/** UploadMediaResponse. */
export interface UploadResult {
  fileId: string
  fileUrl: string
  /** Set when the upload asked for a procedure. */
  procedureTaskId: string
}

export interface MediaInfo {
  fileId: string
  fileName: string
  fileUrl: string
  size: number
  md5: string
  createTime: string | null
  sourceType: SourceType
  sourceContext: string
  /** Null when ffprobe could not read the file (see probeError). */
  metadata: MediaMetadata | null
  probeError: string
  sourceTaskId: string
}

export interface MediaMetadata {
  container: string
  durationSeconds: number
  width: number
  height: number
  bitrate: number
  streams: MediaStream[]
}

export interface MediaStream {
  index: number
  /** 'video', 'audio', ... */
  codecType: string
  codec: string
  bitrate: number
  width: number
  height: number
  fps: number
  sampleRate: number
  channels: number
}

// ----------------------------------------------------------------- events

/** The message of every delivery path, before index.js adds `data`. */
export interface RawEvent {
  /** The same on every redelivery: deduplicate by it. */
  eventId: string
  eventType: string
  /** Empty for events not about a task (NewFileUpload). */
  taskId: string
  eventTime: string | null
  /** 1, 2, 3... per task. */
  taskSequence: number
  /** The envelope as sent, byte-identical in every delivery path. */
  contentJson: string
  /** This delivery included. */
  deliveryCount: number
}

/** The fields of every task event's data. */
export interface TaskEventData {
  vodTaskId: string
  /** The task's errCode (0 = success), 70003 when it was cancelled. */
  status: number
  message: string
  sessionContext: string
}

/** `fileType` is lowercase in event data. */
export interface EventFileInfo {
  fileType: 'mp4' | 'm3u8'
  status: number
  message: string
  fileId: string
  fileUrl: string
}

export interface EventPicture {
  /** Milliseconds. */
  timeOffset: number
  url: string
  /** 0 = taken. */
  status: number
}

export interface TranscodeCompleteData extends TaskEventData {
  fileId: string
  fileName: string
  duration: number
  coverUrl: string
  /** Absent when the transcode failed. */
  playSet?: Array<{ url: string; definition: number; vbitrate: number; vheight: number; vwidth: number }>
}

export interface CreateSnapshotByTimeOffsetCompleteData extends TaskEventData {
  fileId: string
  definition: number
  picInfo: EventPicture[]
}

export interface ConcatCompleteData extends TaskEventData {
  /** One per output type. */
  fileInfo: EventFileInfo[]
}

export interface ClipCompleteData extends TaskEventData {
  srcFileId: string
  fileInfo: EventFileInfo
}

export interface CreateImageSpriteCompleteData extends TaskEventData {
  fileId: string
  definition: number
  totalCount: number
  imageSpriteUrl: string[]
  webVttUrl: string
}

export interface PullCompleteData extends TaskEventData {
  fileId: string
  fileUrl: string
  procedureTaskId: string
}

export interface FileDeletedData extends TaskEventData {
  /** The files and renditions deleted; on failure the files asked for. */
  fileInfo: Array<{ fileId: string }>
}

/** A subtask in ProcedureStateChanged, as the platform names it. */
export type ProcedureSubtaskData = {
  status: SubtaskStatus
  errCode: number
  message: string
  progress: number
} & (
  | {
      taskType: 'Transcode'
      input: { definition: number }
      /** Empty until the subtask has an output. */
      output: Partial<{ url: string; fileId: string; definition: number; size: number; bitrate: number; height: number; width: number; duration: number }>
    }
  | {
      taskType: 'SnapshotByTimeOffset'
      input: { definition: number; timeOffset: number[] }
      output: Partial<{ imgInfo: EventPicture[] }>
    }
  | {
      taskType: 'ImageSprites'
      input: { definition: number }
      output: Partial<{ totalCount: number; imageUrls: string[]; webVttUrl: string }>
    }
  | {
      taskType: 'CoverBySnapshot'
      input: { definition: number; positionType: 'Time' | 'Percent'; position: number }
      output: Partial<{ imageUrl: string }>
    }
)

export interface ProcedureStateChangedData {
  vodTaskId: string
  /** PROCESSING: a subtask changed (notifyMode CHANGE); FINISH: the procedure ended. */
  status: 'PROCESSING' | 'FINISH'
  errCode: number
  message: string
  fileId: string
  sessionContext: string
  /** The file's metadata; only size and md5 when ffprobe could not read it; null without the file. */
  metaData: {
    size: number
    md5: string
    container?: string
    bitrate?: number
    height?: number
    width?: number
    duration?: number
    videoStreamList?: Array<{ bitrate: number; height: number; width: number; codec: string; fps: number }>
    audioStreamList?: Array<{ bitrate: number; samplingRate: number; codec: string }>
  } | null
  processTaskList: ProcedureSubtaskData[]
}

export interface NewFileUploadData {
  fileId: string
  fileName: string
  fileUrl: string
  coverUrl: string
  sourceType: 'ClientUpload'
  sourceContext: string
  procedureTaskId: string
}

/** The envelope's `data` of each event type (docs/events.md, "The envelope"). */
export interface EventDataByType {
  NewFileUpload: NewFileUploadData
  TranscodeComplete: TranscodeCompleteData
  CreateSnapshotByTimeOffsetComplete: CreateSnapshotByTimeOffsetCompleteData
  ConcatComplete: ConcatCompleteData
  ClipComplete: ClipCompleteData
  CreateImageSpriteComplete: CreateImageSpriteCompleteData
  PullComplete: PullCompleteData
  FileDeleted: FileDeletedData
  ProcedureStateChanged: ProcedureStateChangedData
}
export type EventType = keyof EventDataByType

/** The fields every event shares, and `data` typed by `eventType`. */
interface EventOf<T extends EventType> extends RawEvent {
  eventType: T
  /** The envelope's `data`, parsed from contentJson when first read. */
  readonly data: EventDataByType[T]
  /** Every field, `data` included. */
  toJSON(): RawEvent & { data: EventDataByType[T] }
}

/**
 * An event as every delivery path (consume, subscribe, pullEvents,
 * deadLetterEvents) gives it: a union on `eventType`, so that checking it
 * types `data`: `if (e.eventType === 'TranscodeComplete') e.data.playSet`.
 */
export type Event = { [T in EventType]: EventOf<T> }[EventType]

export interface PulledEvent {
  /** Valid for this delivery only. */
  msgHandle: string
  event: Event
}

/** A result of confirmEvents, extendEvents, nackEvents. */
export interface HandleResult {
  msgHandle: string
  status: HandleStatus
}

/** DescribeEventsStateResponse. */
export interface EventsState {
  /** Deliverable now. */
  ready: number
  /** Leased to a consumer. */
  inFlight: number
  /** Waiting out a nack delay or backoff, or behind an earlier event of the same task. */
  delayed: number
  deadLettered: number
  /** 0 when there is none. */
  oldestUnconfirmedAgeSeconds: number
}

export interface EventConfig {
  mode: DeliveryMode
  notificationUrl: string
  /** Every event type and whether it is sent. */
  eventTypes: Record<string, boolean>
  visibilityTimeoutSeconds: number
  maxDeliveries: number
  retentionSeconds: number
  /** PUSH: the secret (whsec_…) callbacks are signed with. */
  signingSecret: string
  /** PUSH: set during a rotation's overlap. */
  previousSecretExpireTime: string | null
  callbackTimeoutSeconds: number
  /** PUSH: the delay before each attempt, the first included. */
  retryScheduleSeconds: number[]
  disableAfterSeconds: number
  /** PUSH: set while the endpoint is disabled. */
  endpointDisabledTime: string | null
  /** PUSH: the endpoint as the callback worker sees it now. */
  endpointHealth: EndpointHealth | null
}

export interface EndpointHealth {
  circuit: CircuitState
  consecutiveFailures: number
  failingSince: string | null
  lastFailureTime: string | null
  lastFailure: string
}

/** ModifyEventConfigRequest: only the fields that are set change. */
export interface EventConfigChanges {
  mode?: DeliveryMode
  notificationUrl?: string | null
  /** Switches for the named event types; others keep theirs. */
  eventTypes?: Record<string, boolean>
  visibilityTimeoutSeconds?: number | null
  maxDeliveries?: number | null
  retentionSeconds?: number | null
  callbackTimeoutSeconds?: number | null
  /** Replaces the retry schedule when not empty. */
  retryScheduleSeconds?: number[]
  disableAfterSeconds?: number | null
  /** true enables a disabled endpoint again; false disables it. */
  endpointEnabled?: boolean | null
}

/** PullEventsRequest. */
export interface PullEventsOptions {
  /** 1..1000; unset means 16. */
  maxEvents?: number
  /** 0..20; unset means 5. */
  waitSeconds?: number | null
}

/** ListDeadLetterEventsRequest. */
export interface DeadLetterOptions {
  /** 1..1000; unset means 100. */
  limit?: number
  /** nextPageToken of the previous page. */
  pageToken?: string
}

/** ListDeadLetterEventsResponse. */
export interface DeadLetterPage {
  events: Event[]
  /** Empty at the end. */
  nextPageToken: string
}

/** ListCallbackAttemptsRequest: exactly one of the two. */
export type CallbackAttemptsOf = { eventId: string; taskId?: never } | { taskId: string; eventId?: never }

export interface CallbackAttempt {
  eventId: string
  /** 1, 2, 3… within a round of the retry schedule; a redrive starts anew. */
  attempt: number
  time: string | null
  url: string
  /** 0 when there was no HTTP answer (see error). */
  httpStatus: number
  error: string
  durationSeconds: number
  /** The first 2 KiB of the answer. */
  response: string
  outcome: AttemptOutcome
  /** Null when this attempt was the last of its round. */
  nextAttemptTime: string | null
}

/** RotateSigningSecretRequest. */
export interface RotateSigningSecretOptions {
  /** How long the old secret keeps signing (default 86400; 0 ends it now). */
  overlapSeconds?: number | null
}

export interface RotateSigningSecretResponse {
  signingSecret: string
  previousSecretExpireTime: string | null
}

/** A callback verified by verifyWebhook, `data` typed by `eventType`. */
export type WebhookEvent = {
  [T in EventType]: {
    eventId: string
    eventType: T
    taskId: string
    taskSequence: number
    /** The envelope's `data`. */
    data: EventDataByType[T]
    /** The body as received. */
    contentJson: string
  }
}[EventType]

// ------------------------------------------------------------ the package

export interface ConnectOptions {
  apiKey: string
  /** Deadline of each call in milliseconds (default 60000). */
  timeoutMs?: number
  /** Default 5000. Bounds the TCP connection and, for https://, the TLS handshake. */
  connectTimeoutMs?: number
  /** For https://: a CA trusted besides the system's roots: the path of a PEM file, PEM text or a Buffer. */
  caCert?: string | Uint8Array
}

export interface OpenOptions {
  /** The app to act as; by default the data dir's `default` app. */
  apiKey?: string
  /** Tasks run at once; by default the number of cores. */
  workers?: number
  /** Where to serve media files over HTTP, e.g. '127.0.0.1:8080'; by default a free port on 127.0.0.1. */
  httpListen?: string
  ffmpeg?: string
  ffprobe?: string
  /** 'full' (default): every commit is fsynced before it is acknowledged; 'normal': once the OS has it. */
  sync?: 'full' | 'normal'
}

/**
 * Every failed call rejects (subscribe, watchTask, listTasks and
 * verifyWebhook: throw) with one of these. An argument of the wrong type
 * is 'INVALID_ARGUMENT' with the call and the field in the message:
 * `createTask: spec.transcode.fileId: expected a string, got number`.
 */
export interface VodtaskError extends Error {
  /** The gRPC status name: 'NOT_FOUND', 'INVALID_ARGUMENT', 'UNAUTHENTICATED', 'UNAVAILABLE', ... */
  code: string
}

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

/** A task's states from watchTask; `break` out of a for-await loop closes it. */
export declare class TaskWatch implements AsyncIterable<Task> {
  /** The next state, or null after the one in which the task ended. */
  next(): Promise<Task | null>
  /** Stops following the task. */
  close(): void
  [Symbol.asyncIterator](): AsyncIterator<Task>
}

/** Deliveries from SubscribeEvents, reconnected as needed; `break` out of a for-await loop closes it. */
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
  /**
   * Every matching task, newest first unless `sortBy`/`order` say otherwise,
   * fetched `limit` a page as the loop goes:
   * `for await (const t of client.listTasks({ status: 'FINISH' }))`.
   * Throws for a bad options bag; a bad field or a failed page fails the loop.
   */
  listTasks(options?: ListTasksOptions): AsyncIterableIterator<Task>
  /** One page; pass its `scrollToken` back (same options) for the next, until it is empty. */
  listTasksPage(options?: ListTasksOptions): Promise<TaskPage>
  taskOverview(options?: { createTime?: TimeRangeInput }): Promise<TaskOverview>
  redoTask(taskId: string): Promise<Task>
  cancelTask(taskId: string): Promise<Task>
  /** Resolves with the task once it ended (FINISH or ABORTED; errCode 0 is success). Takes nothing from the app's event queue, so every copy of an app can wait for its own task. */
  waitTask(taskId: string): Promise<Task>
  /** The task now, then at each change of status, progress or subtasks, until it ends: `for await (const t of client.watchTask(id))`. Reconnects by itself. Throws for bad arguments. */
  watchTask(taskId: string): TaskWatch
  /** Long poll: up to `maxEvents` (default 16) events, waiting up to `waitSeconds` (default 5). */
  pullEvents(options?: PullEventsOptions): Promise<PulledEvent[]>
  confirmEvents(msgHandles: string[]): Promise<HandleResult[]>
  extendEvents(msgHandles: string[], seconds: number): Promise<HandleResult[]>
  nackEvents(msgHandles: string[], delaySeconds?: number): Promise<HandleResult[]>
  eventConfig(): Promise<EventConfig>
  modifyEventConfig(changes: EventConfigChanges): Promise<EventConfig>
  eventsState(): Promise<EventsState>
  /** One page of the dead-lettered events; pass `nextPageToken` as `pageToken` for the next, until it is empty. */
  deadLetterEvents(options?: DeadLetterOptions): Promise<DeadLetterPage>
  /** Puts dead-lettered events back in the queue with a fresh delivery count: these, or without ids all of them. Resolves to how many went back. */
  redriveEvents(eventIds?: string[]): Promise<number>
  /** Delivers these events (1..1000) again now, whatever their state. Resolves to how many of them exist. */
  resendEvents(eventIds: string[]): Promise<number>
  /** PUSH mode: every callback attempt of an event, or of a task's events. */
  callbackAttempts(of: CallbackAttemptsOf): Promise<CallbackAttempt[]>
  /** PUSH mode: a new signing secret; the old one keeps signing during the overlap (default a day), both signatures sent. */
  rotateSigningSecret(options?: RotateSigningSecretOptions): Promise<RotateSigningSecretResponse>
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
