"""Every task type's spec, made by its function or given as a dict, reaches
the server as the proto message and comes back in the task's input."""

from __future__ import annotations

from pathlib import Path

import vodtask


async def test_every_spec_round_trips_through_the_server(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    a = (await client.upload_bytes(b"a", "a.bin")).file_id
    b = (await client.upload_bytes(b"b", "b.bin")).file_id
    c = (await client.upload_bytes(b"c", "c.bin")).file_id
    subtasks: list[dict[str, dict[str, object]]] = [
        {"transcode": {"definition": 100210}},
        {"snapshot_by_time_offset": {"definition": 20, "time_offsets_ms": [0, 1500]}},
        {"image_sprites": {"definition": 10}},
        {"cover_by_snapshot": {"definition": 10, "position_type": "PERCENT", "position": 50.0}},
    ]
    specs = [
        vodtask.transcode(a, [100010, 100210]),
        vodtask.snapshot_by_time_offset(a, 10, [0, 1000]),
        vodtask.concat([a, b], ["MP4", "m3u8"]),
        vodtask.clip(a, 0.5, 1.5),
        vodtask.image_sprites(a, 20),
        vodtask.pull_upload(
            "http://127.0.0.1:9/x.mp4",
            file_name="x.mp4",
            source_context="p",
            timeout_seconds=30,
            procedure=[{"transcode": {"definition": 100010}}],
            notify_mode="CHANGE",
        ),
        vodtask.delete_media([c]),
        vodtask.procedure(a, subtasks, notify_mode="NONE"),
    ]
    kinds = []
    for spec in specs:
        task = await client.describe_task(await client.create_task(spec))
        assert task.input == spec, (task.input, spec)
        kinds.append(task.task_type)
        # The dict form is the same spec.
        again = await client.describe_task(await client.create_task(spec.to_dict()))
        assert again.input == spec
    assert kinds == [
        vodtask.TaskType.TRANSCODE,
        vodtask.TaskType.SNAPSHOT_BY_TIME_OFFSET,
        vodtask.TaskType.CONCAT,
        vodtask.TaskType.CLIP,
        vodtask.TaskType.IMAGE_SPRITES,
        vodtask.TaskType.PULL_UPLOAD,
        vodtask.TaskType.DELETE_MEDIA,
        vodtask.TaskType.PROCEDURE,
    ]
    assert specs[2].to_dict() == {"concat": {"file_ids": [a, b], "output_types": ["MP4", "M3U8"]}}
    assert specs[0].kind == "transcode"
    assert "cover_by_snapshot" in repr(specs[7])
    await client.close()


async def test_an_upload_can_start_a_procedure(tmp_path: Path) -> None:
    client = await vodtask.open(tmp_path / "data", workers=0)
    uploaded = await client.upload_bytes(
        b"bytes", "p.bin", procedure=[{"image_sprites": {"definition": 10}}]
    )
    assert uploaded.procedure_task_id
    task = await client.describe_task(uploaded.procedure_task_id)
    assert task.task_type == vodtask.TaskType.PROCEDURE
    assert task.input == vodtask.procedure(uploaded.file_id, [{"image_sprites": {"definition": 10}}])
    await client.close()
