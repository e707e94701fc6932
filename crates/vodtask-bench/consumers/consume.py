"""The Python package's consume loop for `vodtask-bench consumers`.

Reads VODTASK_URL, VODTASK_API_KEY, VODTASK_EVENTS, VODTASK_CONCURRENCY and
VODTASK_MAX_IN_FLIGHT; handles that many events with a handler that does
nothing, and prints `events_per_second=<rate>` and `cpu_seconds=<this
process's CPU time>`, both measured from the first handled event to the
last, as the Rust consumer in the benchmark does.
"""

import asyncio
import os
import time

import vodtask


async def main() -> None:
    client = await vodtask.connect(os.environ["VODTASK_URL"], api_key=os.environ["VODTASK_API_KEY"])
    total = int(os.environ["VODTASK_EVENTS"])
    concurrency = int(os.environ["VODTASK_CONCURRENCY"])
    max_in_flight = int(os.environ.get("VODTASK_MAX_IN_FLIGHT", concurrency))
    stop = vodtask.StopToken()
    handled = 0
    first = 0.0
    first_cpu = 0.0

    async def handler(event: vodtask.Event) -> None:
        nonlocal handled, first, first_cpu
        if handled == 0:
            first = time.monotonic()
            first_cpu = time.process_time()
        handled += 1
        if handled >= total:
            stop.stop()

    await client.consume(handler, concurrency=concurrency, max_in_flight=max_in_flight, stop=stop)
    print(f"events_per_second={total / (time.monotonic() - first):.1f}")
    print(f"cpu_seconds={time.process_time() - first_cpu:.3f}")
    await client.close()


asyncio.run(main())
