// The Node package's consume loop for `vodtask-bench consumers`: reads
// VODTASK_URL, VODTASK_API_KEY, VODTASK_EVENTS, VODTASK_CONCURRENCY and
// VODTASK_MAX_IN_FLIGHT, handles that many events with a handler that does
// nothing, and prints `events_per_second=<rate>` and `cpu_seconds=<this
// process's CPU time>`, both from the first handled event to the last.
// Run with the package importable (VODTASK_NODE_PACKAGE names its folder).
const pkg = process.env.VODTASK_NODE_PACKAGE ?? 'vodtask'
const { default: vodtask } = await import(pkg.startsWith('/') ? `${pkg}/index.js` : pkg)

const client = await vodtask.connect(process.env.VODTASK_URL, { apiKey: process.env.VODTASK_API_KEY })
const total = Number(process.env.VODTASK_EVENTS)
const concurrency = Number(process.env.VODTASK_CONCURRENCY)
const maxInFlight = Number(process.env.VODTASK_MAX_IN_FLIGHT ?? concurrency)
const stop = new AbortController()
let handled = 0
let first = 0
let firstCpu = null
await client.consume(async () => {
  if (handled === 0) {
    first = performance.now()
    firstCpu = process.cpuUsage()
  }
  handled += 1
  if (handled >= total) stop.abort()
}, { signal: stop.signal, concurrency, maxInFlight })
console.log(`events_per_second=${(total / ((performance.now() - first) / 1000)).toFixed(1)}`)
const cpu = process.cpuUsage(firstCpu)
console.log(`cpu_seconds=${((cpu.user + cpu.system) / 1e6).toFixed(3)}`)
await client.close()
